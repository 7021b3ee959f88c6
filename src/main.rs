//! gvpod's binary: everything lives in the library (`src/lib.rs`).

fn main() {
    std::process::exit(gvpod::main());
}
