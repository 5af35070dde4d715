//! Attribution: which contributions shaped an answer.
pub mod dedup;
pub mod influence;
pub mod retrieval;
pub mod snapshot;
pub mod span;
pub mod cli;
