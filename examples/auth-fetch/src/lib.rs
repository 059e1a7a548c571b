//! Asks an auth backend about every viewer, in viewer-request.
//!
//! The viewer's token (`Authorization`, or the cookie named by `cookie`) is
//! sent to `auth_url` with `fetch`. The backend answers 200 with the user's
//! id as its body: the request goes on with it in `user_header` (default
//! `x-user`; a value the viewer sent there is dropped first, so it cannot be
//! forged). 401 or 403 from the backend, or no token: the viewer gets 401.
//! Anything else (the backend down, slow, or answering 5xx): 503, so a
//! broken auth service never lets a viewer through.
//!
//! The backend must be declared in the distribution (`backends`, or one of
//! its origins) and the association must allow `fetch`:
//!
//! ```json
//! "backends": [{"id": "auth", "domain_name": "auth.internal:8080", "protocol": "http"}],
//! "viewer_request": {"module": "auth-fetch", "fetch": {"max_requests": 1, "timeout_ms": 500},
//!                    "config": {"auth_url": "http://auth.internal:8080/verify"}}
//! ```

use edge_sdk::{Context, Hooks, Request, RequestAction, Response, config, fetch, log};

struct AuthFetch;

/// The viewer's token: `Authorization` as sent, or the cookie's value.
fn token(req: &Request) -> Option<String> {
    if let Some(value) = req.header("authorization") {
        return Some(value.to_owned());
    }
    let cookie = config::get("cookie")?;
    req.cookie(&cookie).map(|v| format!("Bearer {v}"))
}

fn answer(status: u16, message: &str) -> RequestAction {
    let mut resp = Response::text(status, message);
    if status == 401 {
        resp.set_header("www-authenticate", "Bearer");
    }
    resp.set_header("cache-control", "no-store");
    RequestAction::respond(resp)
}

impl Hooks for AuthFetch {
    fn viewer_request(_ctx: Context, mut req: Request) -> RequestAction {
        let user_header = config::get("user_header").unwrap_or_else(|| "x-user".to_owned());
        req.remove_header(&user_header);
        let Some(url) = config::get("auth_url") else {
            log::error("auth-fetch: no auth_url in the association's config");
            return answer(503, "authentication is not configured");
        };
        let Some(token) = token(&req) else {
            return answer(401, "a token is required");
        };
        match fetch::get(&url, &[("authorization", &token)]) {
            Ok(resp) if resp.status == 200 => {
                let user = resp.text().unwrap_or("").trim().to_owned();
                if user.is_empty() {
                    return answer(503, "the auth service named no user");
                }
                req.set_header(&user_header, &user);
                RequestAction::forward(req)
            }
            Ok(resp) if resp.status == 401 || resp.status == 403 => {
                answer(401, "the token was not accepted")
            }
            Ok(resp) => {
                log::warn(&format!(
                    "auth-fetch: the auth service answered {}",
                    resp.status
                ));
                answer(503, "the auth service failed")
            }
            Err(err) => {
                log::warn(&format!("auth-fetch: {err:?}"));
                answer(503, "the auth service cannot be reached")
            }
        }
    }
}

edge_sdk::export!(AuthFetch);
