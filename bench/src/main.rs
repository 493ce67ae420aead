//! Sluice benchmarks.
fn main() {}
