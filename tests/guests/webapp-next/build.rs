// The revision the shared webapp source reads with `option_env!`.
fn main() {
    println!("cargo:rustc-env=WEBAPP_REVISION=2");
}
