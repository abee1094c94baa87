//! End-to-end tests of bosun live in `tests/`; this crate has no library code.
