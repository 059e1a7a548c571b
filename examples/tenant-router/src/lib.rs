//! One origin per tenant, named from the viewer's `Host`: `acme.example.com`
//! goes to `acme.backend.internal`, with no origin listed per tenant.
//!
//! The tenant is the first label of the `Host` (lower case; 1-63 of `a-z
//! 0-9 -`, not starting or ending with `-`); `origin_template` with
//! `{tenant}` replaced is the origin's host. The distribution's
//! `dynamic_origins` must allow it: a name outside its patterns fails the
//! request (502), so a forged `Host` reaches nothing else. The request goes
//! on with `x-tenant` set; the cache keeps each tenant's objects apart.
//!
//! ```json
//! "dynamic_origins": {"allow": ["*.backend.internal"]},
//! "viewer_request": {"module": "tenant-router",
//!                    "config": {"origin_template": "{tenant}.backend.internal"}}
//! ```
//!
//! Config: `origin_template` (required), `protocol` (`https`, the default,
//! or `http`), `port` (the protocol's default when unset), `origin_path`.

use edge_sdk::{Context, DynamicOrigin, Hooks, Request, RequestAction, Response, config};

struct TenantRouter;

/// The tenant a `Host` names: its first label, when it is a valid one.
fn tenant(host: &str) -> Option<String> {
    let host = host.split(':').next()?.to_ascii_lowercase();
    let (label, rest) = host.split_once('.')?;
    let valid = !label.is_empty()
        && label.len() <= 63
        && !rest.is_empty()
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then(|| label.to_owned())
}

impl Hooks for TenantRouter {
    fn viewer_request(_ctx: Context, mut req: Request) -> RequestAction {
        let Some(template) = config::get("origin_template") else {
            return RequestAction::respond(Response::text(
                500,
                "origin_template is not configured",
            ));
        };
        let Some(tenant) = req.header("host").and_then(tenant) else {
            return RequestAction::respond(Response::text(400, "no tenant in the Host"));
        };
        let mut origin = match config::get("protocol").as_deref() {
            Some("http") => DynamicOrigin::http(&template.replace("{tenant}", &tenant)),
            _ => DynamicOrigin::https(&template.replace("{tenant}", &tenant)),
        };
        if let Some(port) = config::get_parsed::<u16>("port") {
            origin = origin.port(port);
        }
        if let Some(path) = config::get("origin_path") {
            origin = origin.origin_path(&path);
        }
        req.set_header("x-tenant", &tenant);
        RequestAction::forward_to_host(req, origin)
    }
}

edge_sdk::export!(TenantRouter);

#[cfg(test)]
mod tests {
    use super::tenant;

    #[test]
    fn the_tenant_is_the_hosts_first_valid_label() {
        assert_eq!(tenant("Acme.example.com:8080").as_deref(), Some("acme"));
        assert_eq!(tenant("a-1.example.com").as_deref(), Some("a-1"));
        for bad in [
            "example",
            "-a.example.com",
            "a_b.example.com",
            ".example.com",
        ] {
            assert_eq!(tenant(bad), None, "{bad}");
        }
    }
}
