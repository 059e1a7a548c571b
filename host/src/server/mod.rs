//! A running host: the viewer and control listeners and the wiring between the
//! store, the control plane, the cache and the proxy.
//!
//! One file per concern, from the host down to one connection:
//! - `options.rs`: [`HostOptions`], what `edge serve` configures a host with.
//! - `host.rs`: [`RunningHost`], the wiring started on its listeners, and its
//!   shutdown; [`StartError`].
//! - `listen.rs`: the accept loops of the viewer and control listeners.
//! - `plain.rs`: a plain-TCP viewer connection, parked between requests
//!   without parser state.
//! - `https.rs`: a TLS viewer connection: the handshake, and the protocol
//!   ALPN agreed on.
//! - `connection.rs`: one viewer connection served by hyper in HTTP/1.1 or
//!   HTTP/2, with its head limits and deadlines.
//!
//! And what they lean on: the framing watch (`framing.rs`), the HTTP/2
//! trailer watch (`h2_trailers.rs`), connection deadlines (`deadline.rs`),
//! shedding idle connections when descriptors run out (`shed.rs`), handing
//! the listeners to a new host (`handover.rs`), the data dir (`data_dir.rs`)
//! and the host id (`host_id.rs`).

mod connection;
pub mod data_dir;
pub mod deadline;
pub(crate) mod framing;
pub(crate) mod h2_trailers;
pub mod handover;
mod host;
pub mod host_id;
mod https;
mod listen;
mod options;
mod plain;
mod shed;

pub use host::{RunningHost, StartError};
pub use options::{DEFAULT_IDLE_TIMEOUT, DEFAULT_SEND_TIMEOUT, HostOptions};
