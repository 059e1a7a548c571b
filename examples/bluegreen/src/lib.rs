//! Blue/green by cookie.
//!
//! A viewer with `deployment=blue` or `deployment=green` goes to that origin.
//! A viewer without the cookie gets a weighted choice: green's share is the
//! percentage in KV `bluegreen/green_weight` (0 when unset), so an operator moves
//! traffic with one `PUT /v1/kv/bluegreen/green_weight` and no redeploy. The
//! choice sticks: viewer-response sets the cookie.
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

use edge_sdk::{Context, Hooks, Request, RequestAction, Response, config, kv};

struct BlueGreen;

fn setting(name: &str, default: &str) -> String {
    config::get(name).unwrap_or_else(|| default.to_owned())
}

impl Hooks for BlueGreen {
    fn viewer_request(_ctx: Context, req: Request) -> RequestAction {
        let arm = match req.cookie(&setting("cookie", "deployment")).as_deref() {
            Some("green") => "green",
            Some("blue") => "blue",
            _ => {
                let green: f64 =
                    kv::get_parsed(&setting("kv_namespace", "bluegreen"), "green_weight")
                        .unwrap_or(0.0);
                let green = green.clamp(0.0, 100.0);
                match edge_sdk::weighted_index(edge_sdk::random_u64(), &[100.0 - green, green]) {
                    Some(1) => "green",
                    _ => "blue",
                }
            }
        };
        let origin = setting(&format!("{arm}_origin"), arm);
        RequestAction::forward_to(req, &origin)
    }

    fn viewer_response(ctx: Context, req: Request, mut resp: Response) -> Response {
        let name = setting("cookie", "deployment");
        if req.cookie(&name).is_none() {
            let arm = if ctx.origin_id == setting("green_origin", "green") {
                "green"
            } else {
                "blue"
            };
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
