//! Host bindings generated from the one WIT contract in `guest-sdk/wit/`.

wasmtime::component::bindgen!({
    path: "../guest-sdk/wit",
    world: "hooks",
    exports: { default: async },
});

use self::edge::hooks::types;
pub use types::{Arm, Event, Forward, Header};

/// The `types` interface declares types only.
impl types::Host for super::HookState {}
