//! Harness for end-to-end tests: a real host on port 0, real origins on port 0,
//! a real HTTP client.
#![forbid(unsafe_code)]

pub use serde_json::{Value, json};

/// Paths of the example hooks built by `build.rs`, and `for_each_example!`.
pub mod examples {
    include!(concat!(env!("OUT_DIR"), "/examples.rs"));
}

mod client;
mod edge;
mod etcd;
mod fixtures;
pub mod js;
mod load;
mod origin;
pub mod tls;

pub use client::*;
pub use edge::*;
pub use etcd::*;
pub use fixtures::*;
pub use load::*;
pub use origin::*;
