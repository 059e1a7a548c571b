//! WebSockets: a viewer's `Upgrade: websocket` handshake passed to the
//! origin (after the viewer-request and origin-request hooks, which may
//! answer it or route it), and, once the origin switched protocols, the
//! bytes of both connections relayed until either side closes or the
//! behavior's idle timeout passes with none.
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

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{
    CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE, VIA,
};
use http::{Method, Response, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::time::Instant;

use crate::access_log;
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::origin::Origins;
use crate::upgrade::{Io, ViewerUpgrade};

use crate::wasm::Event;

use super::body::{EdgeBody, OriginBody};
use super::ctx::{Decision, Exchange, RequestCtx};
use super::routing::ServedDistribution;
use super::{NO_HOOKS, Proxy, hooks};

/// How long the two connections may take to be handed over once the
/// origin's `101` is in.
const SWITCH_WAIT: Duration = Duration::from_secs(10);

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

/// A WebSocket the origin accepted: opened once its `101` (an HTTP/2
/// viewer's `200`) has gone to the viewer.
pub(super) struct Tunnel {
    viewer: ViewerUpgrade,
    /// The viewer speaks HTTP/2: it is answered `200`.
    over_h2: bool,
    origin: hyper::upgrade::OnUpgrade,
    idle: Duration,
    /// The access-log record, finished when the tunnel closes.
    pub(super) log: Option<access_log::Pending>,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
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
                Decision::Respond(generated) => return Ok(hooks::generated_response(generated)),
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

impl Tunnel {
    /// Whether the response going to the viewer opens the tunnel (rather
    /// than a hook's or an error's answer in its place).
    pub(super) fn opens_with(&self, status: StatusCode) -> bool {
        if self.over_h2 {
            status == StatusCode::OK
        } else {
            status == StatusCode::SWITCHING_PROTOCOLS
        }
    }

    /// Relays the two connections on a task of its own, once both are
    /// handed over, until either side closes or neither sends a byte
    /// within the idle timeout; then counts and logs the tunnel.
    pub(super) fn open(self, metrics: Arc<Metrics>, request_id: String) {
        tokio::spawn(async move {
            let Self {
                viewer,
                over_h2: _,
                origin,
                idle,
                log,
            } = self;
            let switched = tokio::time::timeout(SWITCH_WAIT, async {
                let viewer = viewer.switched().await.map_err(|e| e.to_string())?;
                let origin = origin.await.map_err(|e| e.to_string())?;
                Ok::<_, String>((viewer, origin))
            })
            .await;
            let (viewer, origin) = match switched {
                Ok(Ok(both)) => both,
                Ok(Err(err)) => {
                    tracing::debug!(request_id, error = %err, "WebSocket not opened");
                    return;
                }
                Err(_) => {
                    tracing::debug!(request_id, "WebSocket not opened: the switch took too long");
                    return;
                }
            };
            let counters = &metrics.websockets;
            counters.opened.fetch_add(1, Ordering::Relaxed);
            counters.open.fetch_add(1, Ordering::Relaxed);
            let activity = Arc::new(Activity::new());
            let viewer = Counted::new(viewer, activity.clone(), VIEWER);
            let origin = Counted::new(
                hyper_util::rt::TokioIo::new(origin),
                activity.clone(),
                ORIGIN,
            );
            let relayed = tokio::select! {
                relayed = relay(viewer, origin) => Some(relayed),
                () = activity.idle_for(idle) => None,
            };
            match relayed {
                None => {
                    counters.idle_closed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(request_id, ?idle, "WebSocket closed: idle");
                }
                Some(Err(err)) => {
                    tracing::debug!(request_id, error = %err, "WebSocket ended with an error");
                }
                Some(Ok(())) => {}
            }
            let from_viewer = activity.read[VIEWER].load(Ordering::Relaxed);
            let from_origin = activity.read[ORIGIN].load(Ordering::Relaxed);
            counters.open.fetch_sub(1, Ordering::Relaxed);
            counters
                .from_viewers
                .fetch_add(from_viewer, Ordering::Relaxed);
            counters
                .from_origins
                .fetch_add(from_origin, Ordering::Relaxed);
            if let Some(log) = log {
                log.finish_tunnel(from_origin, from_viewer);
            }
        });
    }
}

/// How long one side of a tunnel may stay open after the other closed
/// (sent its last byte and FIN): a peer that half-closes is done.
const HALF_CLOSED_GRACE: Duration = Duration::from_secs(5);

/// Copies each side's bytes to the other until both have closed, or one
/// has and the other has not within [`HALF_CLOSED_GRACE`]. Each side's
/// end is passed on as the end of the other side's writes.
async fn relay<V: Io, G: Io>(viewer: V, origin: G) -> std::io::Result<()> {
    let (mut viewer_read, mut viewer_write) = tokio::io::split(viewer);
    let (mut origin_read, mut origin_write) = tokio::io::split(origin);
    let up = async {
        let copied = tokio::io::copy(&mut viewer_read, &mut origin_write).await;
        let _ = origin_write.shutdown().await;
        copied
    };
    let down = async {
        let copied = tokio::io::copy(&mut origin_read, &mut viewer_write).await;
        let _ = viewer_write.shutdown().await;
        copied
    };
    tokio::pin!(up, down);
    let first = tokio::select! {
        first = &mut up => {
            let _ = tokio::time::timeout(HALF_CLOSED_GRACE, &mut down).await;
            first
        }
        first = &mut down => {
            let _ = tokio::time::timeout(HALF_CLOSED_GRACE, &mut up).await;
            first
        }
    };
    first.map(|_| ())
}

/// The side a tunnel read bytes from.
const VIEWER: usize = 0;
const ORIGIN: usize = 1;

/// What a tunnel's two sides sent, and when either last sent a byte.
#[derive(Debug)]
struct Activity {
    since: Instant,
    /// Milliseconds after `since`.
    last: AtomicU64,
    /// Bytes read from the viewer, and from the origin.
    read: [AtomicU64; 2],
}

impl Activity {
    fn new() -> Self {
        Self {
            since: Instant::now(),
            last: AtomicU64::new(0),
            read: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    fn touch(&self) {
        let millis = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(millis, Ordering::Relaxed);
    }

    /// Ends once `idle` has passed with no byte either way.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.since + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One side of a tunnel: the bytes read from it are counted, and stamp the
/// tunnel's activity.
struct Counted<IO> {
    io: IO,
    activity: Arc<Activity>,
    side: usize,
}

impl<IO> Counted<IO> {
    fn new(io: IO, activity: Arc<Activity>, side: usize) -> Self {
        Self { io, activity, side }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.activity.read[this.side].fetch_add(n as u64, Ordering::Relaxed);
            this.activity.touch();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
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
