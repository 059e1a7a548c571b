//! Routes by a header and by path prefix.
//!
//! Config: `header` (default `x-canary`), `value` (default `1`) and `origin`
//! (default `canary`): a request whose header has that value goes to that
//! origin. `path_prefix` and `path_origin`: a path starting with the prefix goes
//! to that origin (the header rule wins when both match).

use edge_sdk::{Context, Hooks, Request, RequestAction, config};

struct HeaderRouter;

impl Hooks for HeaderRouter {
    fn viewer_request(_ctx: Context, req: Request) -> RequestAction {
        let header = config::get("header").unwrap_or_else(|| "x-canary".to_owned());
        let value = config::get("value").unwrap_or_else(|| "1".to_owned());
        if req.header(&header) == Some(value.as_str()) {
            let origin = config::get("origin").unwrap_or_else(|| "canary".to_owned());
            return RequestAction::forward_to(req, &origin);
        }
        if let (Some(prefix), Some(origin)) =
            (config::get("path_prefix"), config::get("path_origin"))
            && req.path.starts_with(&prefix)
        {
            return RequestAction::forward_to(req, &origin);
        }
        RequestAction::forward(req)
    }
}

edge_sdk::export!(HeaderRouter);
