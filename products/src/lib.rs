//! Placeholder until the crate is built.
