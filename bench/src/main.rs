//! Benchmarks: not yet filled.
fn main() {}
