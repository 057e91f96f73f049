//! Helpers shared by the black-box suites: a raw protocol client ([`wire`])
//! and configured librdkafka clients ([`clients`]). Each test binary uses a
//! different subset.

#![allow(dead_code)]

pub mod clients;
pub mod groups;
pub mod proxy;
pub mod wire;
