//! The `mesh` command.
#![forbid(unsafe_code)]
fn main() {}
