//! A layer's file tree before it becomes tar: every entry with the
//! ownership and mode it has in the image, whatever the build machine's
//! file had.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where a regular file's bytes come from.
#[derive(Debug, Clone)]
pub enum Content {
    /// Bytes known to the builder.
    Bytes(Vec<u8>),
    /// A file on the build machine, read (through symlinks) when the layer is written.
    File(PathBuf),
}

/// One entry of a layer.
#[derive(Debug, Clone)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file.
    File(Content),
    /// A symbolic link to this target.
    Symlink(String),
}

/// An entry with the ownership and mode it has in the image, whatever the
/// build machine's file had: that is what makes layers reproducible.
#[derive(Debug, Clone)]
pub struct Entry {
    /// What it is.
    pub node: Node,
    /// Permission bits (with sticky/setgid where meant).
    pub mode: u32,
    /// Owner and group.
    pub owner: u32,
}

/// A layer's file tree, keyed by path relative to `/` (no leading slash).
/// The map's byte order puts every directory before what it holds, which is
/// the order the tar is written in.
#[derive(Debug, Default, Clone)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

impl Tree {
    /// Adds a directory (and its parents, root-owned 0755).
    pub fn dir(&mut self, path: &str, mode: u32, owner: u32) {
        self.parents(path);
        self.entries.insert(
            path.to_owned(),
            Entry {
                node: Node::Dir,
                mode,
                owner,
            },
        );
    }

    /// Adds a root-owned regular file (and its parents).
    pub fn file(&mut self, path: &str, mode: u32, content: Content) {
        self.parents(path);
        self.entries.insert(
            path.to_owned(),
            Entry {
                node: Node::File(content),
                mode,
                owner: 0,
            },
        );
    }

    /// Adds a root-owned symbolic link (and its parents).
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.parents(path);
        self.entries.insert(
            path.to_owned(),
            Entry {
                node: Node::Symlink(target.to_owned()),
                mode: 0o777,
                owner: 0,
            },
        );
    }

    fn parents(&mut self, path: &str) {
        let mut at = 0;
        while let Some(slash) = path[at..].find('/') {
            let parent = &path[..at + slash];
            self.entries
                .entry(parent.to_owned())
                .or_insert_with(|| Entry {
                    node: Node::Dir,
                    mode: 0o755,
                    owner: 0,
                });
            at += slash + 1;
        }
    }

    /// The entries in the order they are written.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries
            .iter()
            .map(|(path, entry)| (path.as_str(), entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_are_root_owned_directories() {
        let mut tree = Tree::default();
        tree.file("lib64/ld.so", 0o755, Content::Bytes(Vec::new()));
        tree.dir("var/cache/bosun", 0o755, 65532);
        tree.file(
            "lib/x86_64-linux-gnu/libc.so.6",
            0o755,
            Content::Bytes(Vec::new()),
        );
        let paths: Vec<&str> = tree.entries().map(|(path, _)| path).collect();
        assert_eq!(
            paths,
            [
                "lib",
                "lib/x86_64-linux-gnu",
                "lib/x86_64-linux-gnu/libc.so.6",
                "lib64",
                "lib64/ld.so",
                "var",
                "var/cache",
                "var/cache/bosun",
            ]
        );
        let (_, var) = tree.entries().find(|(p, _)| *p == "var").expect("var");
        assert!(matches!(var.node, Node::Dir) && var.owner == 0 && var.mode == 0o755);
    }
}
