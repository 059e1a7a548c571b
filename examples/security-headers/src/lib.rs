//! Adds security headers to every response in viewer-response.
//!
//! Config (all optional): `hsts` (default `max-age=63072000; includeSubDomains;
//! preload`), `csp` (default `default-src 'self'`), `frame_options` (default
//! `DENY`), `referrer_policy` (default `strict-origin-when-cross-origin`). A
//! header the origin already set is left as it is.

use edge_sdk::{Context, Hooks, Request, Response, config};

struct SecurityHeaders;

impl Hooks for SecurityHeaders {
    fn viewer_response(_ctx: Context, _req: Request, mut resp: Response) -> Response {
        let defaults = [
            (
                "strict-transport-security",
                "hsts",
                "max-age=63072000; includeSubDomains; preload",
            ),
            ("content-security-policy", "csp", "default-src 'self'"),
            ("x-frame-options", "frame_options", "DENY"),
            (
                "referrer-policy",
                "referrer_policy",
                "strict-origin-when-cross-origin",
            ),
            ("x-content-type-options", "content_type_options", "nosniff"),
        ];
        for (header, setting, default) in defaults {
            if resp.header(header).is_none() {
                let value = config::get(setting).unwrap_or_else(|| default.to_owned());
                resp.set_header(header, &value);
            }
        }
        resp
    }
}

edge_sdk::export!(SecurityHeaders);
