//! The binary embeds `web/` (see `src/web.rs`): rebuild when anything under it changes,
//! a file added or removed included.

fn main() {
    println!("cargo:rerun-if-changed=web");
}
