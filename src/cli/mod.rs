//! Command-line interface: clap argument structs and output formatting only.

pub fn main() -> i32 {
    0
}
