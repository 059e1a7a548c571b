//! Host bindings of the two hook worlds: `edge:hooks@0.2.0`, the current one
//! (`guest-sdk/wit/`), which the host speaks, and `edge:hooks@0.1.0`, frozen
//! (`host/wit/v0.1.0/`), whose components are adapted at the call (`compat`).

mod compat;

/// The current world: the four events in the `events` interface.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit",
        world: "hooks",
        imports: { "edge:hooks/fetch.send": async },
        exports: { default: async },
    });
}

/// The first world: the four events exported by the world itself.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "wit/v0.1.0",
        world: "hooks",
        exports: { default: async },
    });
}

pub use v0_2::edge::hooks::types::{
    Arm, Context, DynamicOrigin, Event, Forward, Header, Protocol, Request, RequestAction, Response,
};

/// The name of the current world's `events` export.
pub const EVENTS_EXPORT: &str = "edge:hooks/events@0.2.0";

/// The `types` interfaces declare types only.
impl v0_2::edge::hooks::types::Host for super::HookState {}
impl v0_1::edge::hooks::types::Host for super::HookState {}
