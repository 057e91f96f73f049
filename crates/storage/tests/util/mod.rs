//! Fixtures shared by the storage integration tests: a log builder (a
//! manager over a temp dir with one partition) and batch generators built
//! with `BatchBuilder`.
#![allow(dead_code)]

pub mod log_builder;
pub mod random_batch;

pub use log_builder::*;
pub use random_batch::*;
