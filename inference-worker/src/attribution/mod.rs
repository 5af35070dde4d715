//! Attribution: which contributions shaped an answer.
pub mod span;
pub mod cli;
