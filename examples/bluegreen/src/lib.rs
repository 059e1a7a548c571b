//! Blue/green by cookie.
//!
//! A viewer with `deployment=blue` or `deployment=green` goes to that origin.
//! A viewer without the cookie gets a weighted choice: green's share is the
//! percentage in KV `bluegreen/green_weight` (0 when unset), so an operator moves
//! traffic with one `PUT /v1/kv/bluegreen/green_weight` and no redeploy. The
//! choice sticks: viewer-response sets the cookie. Both events run in one
//! instance per request, so viewer-request leaves its choice in a global for
//! viewer-response instead of viewer-response working it out again.
//!
//! Config (all optional): `cookie` (default `deployment`), `blue_origin` and
//! `green_origin` (default `blue` and `green`), `kv_namespace` (default
//! `bluegreen`), `max_age` in seconds (default 86400).
//!
//! It runs on every request, so it is built `no_std` (the SDK without its
//! `std` feature): a smaller component, cheaper to instantiate.

#![no_std]

extern crate alloc;

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU8, Ordering};

use edge_sdk::{Context, Hooks, Request, RequestAction, Response, config, kv};

struct BlueGreen;

/// What viewer-request decided for this request: [`UNKNOWN`] until it runs.
static CHOICE: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
/// The viewer had the cookie: nothing to set.
const STUCK: u8 = 1;
const FRESH_BLUE: u8 = 2;
const FRESH_GREEN: u8 = 3;

fn setting(name: &str, default: &str) -> String {
    config::get(name).unwrap_or_else(|| default.to_owned())
}

impl Hooks for BlueGreen {
    fn viewer_request(_ctx: Context, req: Request) -> RequestAction {
        let (arm, choice) = match req.cookie(&setting("cookie", "deployment")).as_deref() {
            Some("green") => ("green", STUCK),
            Some("blue") => ("blue", STUCK),
            _ => {
                let green: f64 =
                    kv::get_parsed(&setting("kv_namespace", "bluegreen"), "green_weight")
                        .unwrap_or(0.0);
                let green = green.clamp(0.0, 100.0);
                match edge_sdk::weighted_index(edge_sdk::random_u64(), &[100.0 - green, green]) {
                    Some(1) => ("green", FRESH_GREEN),
                    _ => ("blue", FRESH_BLUE),
                }
            }
        };
        CHOICE.store(choice, Ordering::Relaxed);
        let origin = setting(&format!("{arm}_origin"), arm);
        RequestAction::forward_to(req, &origin)
    }

    fn viewer_response(ctx: Context, req: Request, mut resp: Response) -> Response {
        let name = setting("cookie", "deployment");
        let arm = match CHOICE.load(Ordering::Relaxed) {
            STUCK => None,
            FRESH_BLUE => Some("blue"),
            FRESH_GREEN => Some("green"),
            // Attached to viewer-response alone: the arm the request went to.
            _ => req.cookie(&name).is_none().then(|| {
                if ctx.origin_id == setting("green_origin", "green") {
                    "green"
                } else {
                    "blue"
                }
            }),
        };
        if let Some(arm) = arm {
            let max_age = config::get_parsed::<i64>("max_age").unwrap_or(86_400);
            resp.append_header(
                "set-cookie",
                &format!("{name}={arm}; Path=/; Max-Age={max_age}"),
            );
        }
        resp
    }
}

edge_sdk::export!(BlueGreen);
