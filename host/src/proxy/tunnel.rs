//! WebSocket handshakes: a viewer's `Upgrade: websocket` passed to the
//! origin (after the viewer-request and origin-request hooks, which may
//! answer it or route it); once the origin switched protocols, relay.rs
//! carries the bytes of both connections.
//!
//! An HTTP/2 viewer opens a WebSocket with an extended CONNECT (RFC 8441:
//! `:method CONNECT`, `:protocol websocket`) on one stream. The origin is
//! asked in HTTP/1.1 as for any handshake, a `GET` with the upgrade fields
//! and a `Sec-WebSocket-Key` of the host's (an HTTP/2 viewer sends none);
//! the origin's `101`, its `Sec-WebSocket-Accept` checked, becomes the
//! viewer's `200`, and the stream carries the socket's bytes.
//!
//! A handshake is never looked up in or stored by the cache. The
//! origin-response hook does not run on it; the viewer-response hook runs on
//! its answer, a `101` too (it may add fields, a sticky cookie say; the
//! status it cannot change, and a body it gives a `101` is dropped). Hooks
//! see the handshake and its answer without the hop-by-hop `Connection` and
//! `Upgrade` fields, as for any request; the `Sec-WebSocket-*` fields tell
//! a handshake apart.

use std::sync::Arc;

use http::header::{
    CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE, VIA,
};
use http::{Method, Response, StatusCode, Version};

use crate::error::ProxyError;
use crate::origin::Origins;
use crate::upgrade::ViewerUpgrade;
use crate::wasm::Event;

use super::body::{EdgeBody, OriginBody};
use super::ctx::{Decision, Exchange, RequestCtx};
use super::relay::Tunnel;
use super::routing::ServedDistribution;
use super::{NO_HOOKS, Proxy};

/// The GUID a `Sec-WebSocket-Accept` hashes with the key (RFC 6455 1.3).
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A viewer's WebSocket handshake.
#[derive(Debug)]
pub(super) struct Handshake {
    viewer: ViewerUpgrade,
    /// Over HTTP/2 (an extended CONNECT): the `Sec-WebSocket-Key` the host
    /// sent the origin in its name.
    key: Option<String>,
}

/// The viewer's handshake, when `parts` is one and the server can hand its
/// connection on: a `GET` over HTTP/1.1 with `Connection: upgrade` and
/// `Upgrade: websocket` (RFC 6455 4.1), or an HTTP/2 extended CONNECT with
/// `:protocol websocket` (RFC 8441 4), which goes on as a `GET`.
pub(super) fn take_websocket(parts: &mut http::request::Parts) -> Option<Handshake> {
    let h1 = parts.method == Method::GET
        && parts.version == Version::HTTP_11
        && has_token(&parts.headers, CONNECTION, "upgrade")
        && has_token(&parts.headers, UPGRADE, "websocket");
    let h2 = parts.method == Method::CONNECT
        && parts.version == Version::HTTP_2
        && parts
            .extensions
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
    if !h1 && !h2 {
        return None;
    }
    let viewer = parts.extensions.remove::<ViewerUpgrade>()?;
    let key = h2.then(|| {
        parts.method = Method::GET;
        let mut nonce = [0u8; 16];
        crate::ids::random_bytes(&mut nonce);
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, nonce)
    });
    Some(Handshake { viewer, key })
}

/// The `Sec-WebSocket-Accept` an origin answers `key` with.
fn accept_for(key: &str) -> String {
    use sha1::Digest as _;
    let mut sha = sha1::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WEBSOCKET_GUID.as_bytes());
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sha.finalize())
}

/// Whether a comma-separated field lists `token` (case-insensitive).
fn has_token(headers: &http::HeaderMap, name: http::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

impl<O: Origins> Proxy<O> {
    /// Phases 6 and 7 of a WebSocket handshake: the origin-request hook
    /// (its answer goes to the viewer, not to the cache), then the
    /// handshake sent to the origin. A `101` leaves a [`Tunnel`] in `ctx`
    /// for [`Proxy::handle`] to open; any other answer streams back as
    /// the origin sent it.
    pub(super) async fn handshake(
        &self,
        ctx: &mut RequestCtx,
        dist: &Arc<ServedDistribution>,
        index: usize,
        mut out: Exchange,
        handshake: Handshake,
    ) -> Result<Response<EdgeBody<O::Body>>, ProxyError> {
        let Handshake { viewer, key } = handshake;
        let behavior = dist.config.behavior_at(index);
        let hooks = dist.hooks.get(index).unwrap_or(&NO_HOOKS);
        if let Some(hook) = &hooks.origin_request {
            match self.request_hook(hook, ctx, dist, &out, None).await? {
                Decision::Forward { request, body: _ } => out = request,
                Decision::Respond(generated) => return Ok(EdgeBody::generated(generated)),
            }
        }
        // Only viewer-response may run after this (on a refusal).
        ctx.hooks.keep_only(hooks.after(Event::OriginResponse));
        out.headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        out.headers
            .insert(UPGRADE, HeaderValue::from_static("websocket"));
        if let Some(key) = &key {
            let key =
                HeaderValue::from_str(key).map_err(|e| ProxyError::Internal(e.to_string()))?;
            out.headers.insert(SEC_WEBSOCKET_KEY, key);
            if !out.headers.contains_key(SEC_WEBSOCKET_VERSION) {
                out.headers
                    .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            }
        }
        out.headers.append(VIA, self.via.clone());
        let (mut resp, read_timeout) = self.fetch(dist, &out, None, ctx).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let (mut head, incoming) = resp.into_parts();
            crate::fields::strip_hop_by_hop(&mut head.headers);
            let body = OriginBody::new(incoming, read_timeout, None);
            return Ok(Response::from_parts(head, EdgeBody::Origin(Box::new(body))));
        }
        let broken = |reason: &str| {
            ProxyError::Origin(crate::origin::OriginError::Protocol {
                origin: out.target_id.clone(),
                reason: reason.to_owned(),
            })
        };
        if !has_token(resp.headers(), UPGRADE, "websocket") {
            return Err(broken(
                "answered a WebSocket handshake with 101 to another protocol",
            ));
        }
        if let Some(key) = &key {
            let accept = resp.headers().get(SEC_WEBSOCKET_ACCEPT);
            if accept.is_none_or(|got| got.as_bytes() != accept_for(key).as_bytes()) {
                return Err(broken(
                    "answered a WebSocket handshake with a wrong Sec-WebSocket-Accept",
                ));
            }
        }
        let origin = hyper::upgrade::on(&mut resp);
        let (mut head, _) = resp.into_parts();
        crate::fields::strip_hop_by_hop(&mut head.headers);
        if key.is_some() {
            // The viewer's handshake had no key: it gets no accept.
            head.headers.remove(SEC_WEBSOCKET_ACCEPT);
        }
        ctx.tunnel = Some(Tunnel {
            viewer,
            over_h2: key.is_some(),
            origin,
            idle: behavior.websocket_idle_timeout,
            log: None,
        });
        Ok(Response::from_parts(head, EdgeBody::Empty))
    }
}

/// A handshake's answer as it goes to the viewer: the origin's `101`
/// with the fields that switch the connection, and no body; for an HTTP/2
/// viewer, a `200` (the stream is the socket).
pub(super) fn switching<B>(
    resp: Response<EdgeBody<B>>,
    tunnel: Option<&Tunnel>,
) -> Response<EdgeBody<B>> {
    let Some(tunnel) = tunnel.filter(|_| resp.status() == StatusCode::SWITCHING_PROTOCOLS) else {
        return resp;
    };
    let (mut head, _) = resp.into_parts();
    head.headers.remove(http::header::CONTENT_LENGTH);
    if tunnel.over_h2 {
        head.status = StatusCode::OK;
    } else {
        head.headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        head.headers
            .insert(UPGRADE, HeaderValue::from_static("websocket"));
    }
    Response::from_parts(head, EdgeBody::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_is_rfc_6455s() {
        // RFC 6455 1.3's own example.
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn only_websocket_handshakes_are_taken() {
        let parts = |method: Method, version: Version, fields: &[(&str, &str)]| {
            let mut req = http::Request::builder().method(method).version(version);
            for (name, value) in fields {
                req = req.header(*name, *value);
            }
            let (mut parts, ()) = req.body(()).expect("a request").into_parts();
            parts.extensions.insert(ViewerUpgrade::channel().1);
            parts
        };
        let upgrade = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ];
        let mut h1 = parts(Method::GET, Version::HTTP_11, &upgrade);
        let taken = take_websocket(&mut h1).expect("a handshake");
        assert!(taken.key.is_none());
        // Another protocol, another method, no `Connection: upgrade`.
        for (method, fields) in [
            (
                Method::GET,
                &[("connection", "upgrade"), ("upgrade", "h2c")][..],
            ),
            (Method::POST, &upgrade[..]),
            (Method::GET, &[("upgrade", "websocket")][..]),
        ] {
            assert!(take_websocket(&mut parts(method, Version::HTTP_11, fields)).is_none());
        }
        // HTTP/2: an extended CONNECT for websocket, which goes on as a GET
        // with a key of the host's.
        let mut h2 = parts(Method::CONNECT, Version::HTTP_2, &[]);
        h2.extensions
            .insert(hyper::ext::Protocol::from_static("websocket"));
        let taken = take_websocket(&mut h2).expect("a handshake");
        assert_eq!(h2.method, Method::GET);
        let key = taken.key.expect("a key");
        assert_eq!(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &key)
                .map(|k| k.len())
                .ok(),
            Some(16)
        );
        let mut plain_connect = parts(Method::CONNECT, Version::HTTP_2, &[]);
        assert!(take_websocket(&mut plain_connect).is_none());
        assert_eq!(plain_connect.method, Method::CONNECT);
    }
}
