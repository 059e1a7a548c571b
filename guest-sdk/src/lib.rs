//! Write edge hooks in Rust.
//!
//! A hook implements [`Hooks`] (every event has a pass-through default, so a
//! plugin writes only the events it needs) and exports itself with [`export!`]:
//!
//! ```ignore
//! use edge_sdk::{Context, Hooks, Request, RequestAction};
//!
//! struct Canary;
//!
//! impl Hooks for Canary {
//!     fn viewer_request(_ctx: Context, req: Request) -> RequestAction {
//!         if req.header("x-canary") == Some("1") {
//!             return RequestAction::forward_to(req, "canary");
//!         }
//!         RequestAction::forward(req)
//!     }
//! }
//!
//! edge_sdk::export!(Canary);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release` and upload the
//! `.wasm` with `PUT /v1/hooks/{name}`.
//!
//! One instance of the hook serves every event of one request it is attached
//! to, and only that request: a `static` set in `viewer_request` is there in
//! `viewer_response` of the same request (the `request-state` example), and
//! starts from its initial value in every other request.
//!
//! ## `no_std` hooks
//!
//! The default `std` feature gives a hook the standard library and the
//! [`cookie`](https://docs.rs/cookie) crate (`set_cookie`). A hook that needs
//! neither can be `#![no_std]` and depend on the SDK with
//! `default-features = false`: the SDK then brings the allocator (an arena
//! that lives as long as the instance, that is one request), the panic
//! handler (the panic's message goes to the host's log, then the invocation
//! traps) and `cabi_realloc`. Such a component imports no WASI CLI
//! interfaces and is a fifth of the size; a fresh instance per request costs
//! about 20 % less (the `bluegreen` example is built this way). Build it
//! alone (`cargo build -p <hook>`): in one build with crates that use the
//! default features, the SDK is built with `std` for all of them.

#![no_std]
#![deny(unsafe_code)]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

mod choice;
mod http;
#[cfg(all(not(feature = "std"), target_arch = "wasm32"))]
mod runtime;

/// The bindings generated from `wit/hooks.wit`.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "hooks",
        pub_export_macro: true,
        export_macro_name: "export_world",
        default_bindings_module: "edge_sdk::bindings",
        generate_all,
    });
}

pub use bindings::edge::hooks::types::{
    Arm, Context, DynamicOrigin, Event, Forward, Header, Protocol, Request, RequestAction, Response,
};
pub use choice::{stable_hash, weighted_choice, weighted_index};
#[cfg(feature = "std")]
pub use cookie;

/// A hook's four events. Each default passes its message through unchanged.
pub trait Hooks {
    /// Before the cache: rewrite, pick the origin, or answer.
    fn viewer_request(_ctx: Context, req: Request) -> RequestAction {
        RequestAction::forward(req)
    }

    /// On a miss, before the origin: rewrite, re-route, or answer (cached).
    fn origin_request(_ctx: Context, req: Request) -> RequestAction {
        RequestAction::forward(req)
    }

    /// On a miss, after the origin answered.
    fn origin_response(_ctx: Context, _req: Request, resp: Response) -> Response {
        resp
    }

    /// On every response to the viewer; the status is read-only.
    fn viewer_response(_ctx: Context, _req: Request, resp: Response) -> Response {
        resp
    }
}

/// Exports a type implementing [`Hooks`] as the component's `events`
/// (the `edge:hooks@0.2.0` world).
#[macro_export]
macro_rules! export {
    ($ty:ty) => {
        const _: () = {
            struct EdgeHooksExport;
            impl $crate::bindings::exports::edge::hooks::events::Guest for EdgeHooksExport {
                fn viewer_request(
                    ctx: $crate::Context,
                    req: $crate::Request,
                ) -> $crate::RequestAction {
                    <$ty as $crate::Hooks>::viewer_request(ctx, req)
                }
                fn origin_request(
                    ctx: $crate::Context,
                    req: $crate::Request,
                ) -> $crate::RequestAction {
                    <$ty as $crate::Hooks>::origin_request(ctx, req)
                }
                fn origin_response(
                    ctx: $crate::Context,
                    req: $crate::Request,
                    resp: $crate::Response,
                ) -> $crate::Response {
                    <$ty as $crate::Hooks>::origin_response(ctx, req, resp)
                }
                fn viewer_response(
                    ctx: $crate::Context,
                    req: $crate::Request,
                    resp: $crate::Response,
                ) -> $crate::Response {
                    <$ty as $crate::Hooks>::viewer_response(ctx, req, resp)
                }
            }
    $crate::bindings::export_world!(EdgeHooksExport with_types_in $crate::bindings);
        };
    };
}

/// Key-value data set by operators through the control API.
pub mod kv {
    use alloc::string::String;
    use alloc::vec::Vec;

    /// The raw value of `key` in `namespace`.
    pub fn get(namespace: &str, key: &str) -> Option<Vec<u8>> {
        crate::bindings::edge::hooks::kv::get(namespace, key)
    }

    /// The value as UTF-8 text (`None` if unset or not UTF-8).
    pub fn get_string(namespace: &str, key: &str) -> Option<String> {
        get(namespace, key).and_then(|v| String::from_utf8(v).ok())
    }

    /// The value parsed as `T` (`None` if unset or unparsable).
    pub fn get_parsed<T: core::str::FromStr>(namespace: &str, key: &str) -> Option<T> {
        get_string(namespace, key).and_then(|v| v.trim().parse().ok())
    }
}

/// The `config` object of this hook's association.
pub mod config {
    use alloc::string::String;

    /// A value: strings as they are, anything else as JSON text.
    pub fn get(name: &str) -> Option<String> {
        crate::bindings::edge::hooks::config::get(name)
    }

    /// A value parsed as `T`.
    pub fn get_parsed<T: core::str::FromStr>(name: &str) -> Option<T> {
        get(name).and_then(|v| v.trim().parse().ok())
    }

    /// The whole object as JSON text.
    pub fn json() -> String {
        crate::bindings::edge::hooks::config::json()
    }
}

/// HTTP requests to the servers the distribution declares (its origins and
/// `backends`), for an association with a `fetch` object.
///
/// ```ignore
/// let resp = edge_sdk::fetch::get("https://auth.internal/check", &[("authorization", token)])?;
/// if resp.status == 200 { /* ... */ }
/// ```
pub mod fetch {
    use alloc::vec::Vec;

    use crate::Header;
    pub use crate::bindings::edge::hooks::fetch::{Error, OutboundRequest, OutboundResponse};

    fn headers(pairs: &[(&str, &str)]) -> Vec<Header> {
        pairs
            .iter()
            .map(|(name, value)| Header {
                name: name.to_ascii_lowercase(),
                value: value.as_bytes().to_vec(),
            })
            .collect()
    }

    /// Sends `req` and waits for the whole answer.
    pub fn send(req: &OutboundRequest) -> Result<OutboundResponse, Error> {
        crate::bindings::edge::hooks::fetch::send(req)
    }

    /// A GET of `url` with `headers`.
    pub fn get(url: &str, headers_: &[(&str, &str)]) -> Result<OutboundResponse, Error> {
        send(&OutboundRequest {
            method: "GET".into(),
            url: url.into(),
            headers: headers(headers_),
            body: None,
        })
    }

    /// A request of any method, with a body.
    pub fn request(
        method: &str,
        url: &str,
        headers_: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> Result<OutboundResponse, Error> {
        send(&OutboundRequest {
            method: method.into(),
            url: url.into(),
            headers: headers(headers_),
            body: Some(body.into()),
        })
    }

    impl OutboundResponse {
        /// The first value of a header, as text.
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .and_then(|h| core::str::from_utf8(&h.value).ok())
        }

        /// The body as UTF-8 text.
        pub fn text(&self) -> Option<&str> {
            core::str::from_utf8(&self.body).ok()
        }
    }
}

/// Secrets operators set with `PUT /v1/secrets/{store}/{name}`, from the
/// stores the association's `secret_stores` names.
pub mod secrets {
    use alloc::string::String;
    use alloc::vec::Vec;

    pub use crate::bindings::edge::hooks::secrets::Error;

    /// The value of secret `name` in `store`.
    pub fn get(store: &str, name: &str) -> Result<Vec<u8>, Error> {
        crate::bindings::edge::hooks::secrets::get(store, name)
    }

    /// The value as UTF-8 text (`None` when unset, not permitted or not
    /// UTF-8).
    pub fn get_string(store: &str, name: &str) -> Option<String> {
        get(store, name)
            .ok()
            .and_then(|v| String::from_utf8(v).ok())
    }
}

/// Log lines in the host's log, tagged with the request id and the hook.
pub mod log {
    use crate::bindings::edge::hooks::log::{Level, log};

    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }
    pub fn info(message: &str) {
        log(Level::Info, message);
    }
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }
    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

/// 64 random bits from the host (WASI random).
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // The host always provides WASI random; a failure leaves zeros, which only
    // makes the choice deterministic.
    let _ = getrandom::fill(&mut buf);
    u64::from_le_bytes(buf)
}
