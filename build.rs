// refinery embeds sql/ at compile time (db::migrations); without this, adding a migration would
// not rebuild the crate and the binary would silently lack it.
fn main() {
    println!("cargo:rerun-if-changed=sql");
}
