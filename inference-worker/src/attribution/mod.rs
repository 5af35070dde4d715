//! Attribution: which contributions shaped an answer.
pub mod snapshot;
pub mod span;
pub mod cli;
