//! A weighted split over N origins, sticky by cookie.
//!
//! Config: `arms` as `origin:weight,origin:weight,...` (weights in any scale),
//! `cookie` (default `split`), `max_age` in seconds (default 86400). A viewer
//! whose cookie names one of the arms stays on it; a fresh viewer gets a
//! weighted random arm and the cookie.

use edge_sdk::cookie::Cookie;
use edge_sdk::{Context, Hooks, Request, RequestAction, Response, config};

struct Split;

fn arms() -> Vec<(String, f64)> {
    config::get("arms")
        .unwrap_or_default()
        .split(',')
        .filter_map(|arm| {
            let (origin, weight) = arm.trim().split_once(':')?;
            Some((origin.trim().to_owned(), weight.trim().parse().ok()?))
        })
        .collect()
}

fn cookie_name() -> String {
    config::get("cookie").unwrap_or_else(|| "split".to_owned())
}

impl Hooks for Split {
    fn viewer_request(_ctx: Context, req: Request) -> RequestAction {
        let arms = arms();
        if let Some(current) = req.cookie(&cookie_name())
            && arms.iter().any(|(origin, _)| *origin == current)
        {
            return RequestAction::forward_to(req, &current);
        }
        let weights: Vec<f64> = arms.iter().map(|(_, w)| *w).collect();
        match edge_sdk::weighted_index(edge_sdk::random_u64(), &weights) {
            Some(i) => RequestAction::forward_to(req, &arms[i].0),
            None => RequestAction::forward(req),
        }
    }

    fn viewer_response(ctx: Context, req: Request, mut resp: Response) -> Response {
        let name = cookie_name();
        if req.cookie(&name).as_deref() != Some(ctx.origin_id.as_str()) {
            let max_age = config::get_parsed::<i64>("max_age").unwrap_or(86_400);
            let cookie = Cookie::build((name, ctx.origin_id))
                .path("/")
                .max_age(edge_sdk::cookie::time::Duration::seconds(max_age))
                .build();
            resp.set_cookie(&cookie);
        }
        resp
    }
}

edge_sdk::export!(Split);
