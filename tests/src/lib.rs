//! End-to-end tests: not yet filled.
