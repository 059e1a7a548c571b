//! Answers in viewer-request when a signed token is missing or invalid.
//!
//! A token is `<expiry unix seconds>.<hex HMAC-SHA256 of the expiry>` under the
//! key in config `key`, sent as the cookie `edge-auth` (config `cookie`) or as
//! `Authorization: Bearer <token>` (the scheme in any case). Without a valid, unexpired token a browser
//! (an `Accept` with `text/html`) is redirected (302) to config `login_url`
//! when set; anything else gets 401. A valid request goes on with the token
//! removed from what the origin sees.

use std::time::{SystemTime, UNIX_EPOCH};

use edge_sdk::{Context, Hooks, Request, RequestAction, Response, config};
use hmac::{Hmac, Mac};

struct EdgeAuth;

/// The token of `Bearer` credentials; the scheme is case-insensitive
/// (RFC 9110 11.1).
fn bearer_token(credentials: &str) -> Option<&str> {
    let (scheme, token) = credentials.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches(' '))
}

fn valid(token: &str, key: &[u8], now: u64) -> bool {
    let Some((expiry, signature)) = token.split_once('.') else {
        return false;
    };
    let Ok(expires_at) = expiry.parse::<u64>() else {
        return false;
    };
    if expires_at < now || signature.len() != 64 {
        return false;
    }
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(expiry.as_bytes());
    let mut sig = [0u8; 32];
    for (i, byte) in sig.iter_mut().enumerate() {
        match u8::from_str_radix(&signature[2 * i..2 * i + 2], 16) {
            Ok(b) => *byte = b,
            Err(_) => return false,
        }
    }
    mac.verify_slice(&sig).is_ok()
}

impl Hooks for EdgeAuth {
    fn viewer_request(_ctx: Context, mut req: Request) -> RequestAction {
        let key = config::get("key").unwrap_or_default();
        let cookie = config::get("cookie").unwrap_or_else(|| "edge-auth".to_owned());
        let token = req.cookie(&cookie).or_else(|| {
            req.header("authorization")
                .and_then(|a| bearer_token(a).map(str::to_owned))
        });
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if !key.is_empty()
            && token
                .as_deref()
                .is_some_and(|t| valid(t, key.as_bytes(), now))
        {
            req.remove_header("authorization");
            return RequestAction::forward(req);
        }
        let browser = req
            .header("accept")
            .is_some_and(|a| a.contains("text/html"));
        match config::get("login_url") {
            Some(url) if browser => RequestAction::respond(Response::redirect(302, &url)),
            _ => {
                let mut resp = Response::new(
                    401,
                    "application/json",
                    r#"{"error":"a valid token is required"}"#,
                );
                resp.set_header("www-authenticate", "Bearer");
                RequestAction::respond(resp)
            }
        }
    }
}

edge_sdk::export!(EdgeAuth);
