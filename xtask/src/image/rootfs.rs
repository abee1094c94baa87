//! What goes into the image's layers: the file trees, before they become tar.
//!
//! There is no base image to pull, so the base layer is assembled from the
//! build machine: the shared libraries the binary links (as `ldd` resolves
//! them) and the loader, the CA bundle for `url` module sources, and the few
//! files and directories a non-root process expects. The second layer is the
//! binary alone, so a new version pushes one layer.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use bosun_testenv::oci::{Content, Tree};

/// The user and group the image runs as (distroless's `nonroot`).
pub const NONROOT: u32 = 65532;

/// Where the binary lives in the image (the entrypoint).
pub const BINARY: &str = "bosun";

/// Where the host keeps its compile cache (`BOSUN_CACHE_DIR`); the
/// Deployment mounts an emptyDir over it.
pub const CACHE_DIR: &str = "var/cache/bosun";

/// Debian's CA bundle, which rustls-native-certs finds at the same path in
/// the image.
pub const CA_BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";

/// The account files, shared with the Dockerfile (which copies them from
/// `xtask/image/etc/`), so both images have the same users.
const ETC: [(&str, &[u8]); 3] = [
    ("etc/passwd", include_bytes!("../../image/etc/passwd")),
    ("etc/group", include_bytes!("../../image/etc/group")),
    (
        "etc/nsswitch.conf",
        include_bytes!("../../image/etc/nsswitch.conf"),
    ),
];

/// The base layer: what `binary` needs to run as `nonroot` in an image with
/// nothing else in it.
pub fn base(binary: &Path) -> Result<Tree> {
    let mut tree = Tree::default();
    for (path, bytes) in ETC {
        tree.file(path, 0o644, Content::Bytes(bytes.to_vec()));
    }
    let ca_bundle = Path::new("/").join(CA_BUNDLE);
    if !ca_bundle.is_file() {
        bail!(
            "{} is missing: the image needs CA certificates for https module URLs \
             (Debian: apt-get install ca-certificates)",
            ca_bundle.display()
        );
    }
    tree.file(CA_BUNDLE, 0o644, Content::File(ca_bundle));
    // A writable /tmp only where the pod mounts one; present so that a
    // container run without a read-only root still has it.
    tree.dir("tmp", 0o1777, 0);
    tree.dir("home/nonroot", 0o700, NONROOT);
    tree.dir(CACHE_DIR, 0o755, NONROOT);
    for library in shared_libraries(binary)? {
        let inside = library
            .to_str()
            .and_then(|p| p.strip_prefix('/'))
            .with_context(|| format!("ldd named a library at {}", library.display()))?
            .to_owned();
        tree.file(&inside, 0o755, Content::File(library));
    }
    Ok(tree)
}

/// The application layer: the binary at `/bosun`.
pub fn app(binary: &Path) -> Tree {
    let mut tree = Tree::default();
    tree.file(BINARY, 0o755, Content::File(binary.to_owned()));
    tree
}

/// The shared libraries `binary` loads, the loader included, as the build
/// machine's `ldd` resolves them; none for a static binary.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd (from glibc's libc-bin) to find the binary's shared libraries")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // ldd says so, and fails, for a static binary: it needs nothing.
    if stdout.contains("statically linked") || stderr.contains("not a dynamic executable") {
        return Ok(Vec::new());
    }
    if !output.status.success() {
        bail!(
            "ldd {} failed ({}): {}",
            binary.display(),
            output.status,
            stderr.trim()
        );
    }
    parse_ldd(&stdout)
}

/// Reads `ldd`'s lines: `name => /path (0x…)`, `/loader (0x…)`, and the
/// vDSO, which is the kernel's and has no file.
fn parse_ldd(output: &str) -> Result<Vec<PathBuf>> {
    let mut libraries = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let resolved = match line.split_once("=>") {
            Some((name, target)) => {
                let target = target.trim();
                if target.starts_with("not found") {
                    bail!(
                        "ldd cannot find {} on this machine; the binary would not start",
                        name.trim()
                    );
                }
                target
            }
            None => line,
        };
        let path = resolved.split(" (").next().unwrap_or_default().trim();
        if path.starts_with('/') {
            libraries.push(PathBuf::from(path));
        }
    }
    libraries.sort();
    libraries.dedup();
    Ok(libraries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_libraries_and_the_loader_but_not_the_vdso() {
        let output = "\tlinux-vdso.so.1 (0x00007ffc8a5f2000)
\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f3a1c000000)
\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f3a1bf00000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3a1bd00000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f3a1c100000)
";
        let libraries = parse_ldd(output).expect("parses");
        assert_eq!(
            libraries,
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libm.so.6",
                "/lib64/ld-linux-x86-64.so.2",
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn a_library_ldd_cannot_find_is_an_error() {
        let error = parse_ldd("\tlibssl.so.3 => not found\n").expect_err("fails");
        assert!(error.to_string().contains("libssl.so.3"), "{error}");
    }
}
