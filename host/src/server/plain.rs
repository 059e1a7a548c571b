//! Plain-TCP viewer connections: HTTP/1.1 served one request at a time,
//! the connection parked between requests with no parser state, and
//! HTTP/2 by prior knowledge.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use super::connection::{
    FIRST_REQUEST_GRACE, HEADER_READ_TIMEOUT, Protocol, Viewer, ViewerLimits, serve_connection,
};
use super::{deadline, framing, shed};
use crate::proxy::Proxy;

/// The start of the HTTP/2 connection preface (prior knowledge, h2c).
const H2_PREFACE_START: &[u8] = b"PRI ";

/// What the service saw of the request a one-request HTTP/1 connection
/// serves.
#[derive(Debug, Default)]
struct Cycle {
    /// The request had no body and lets the connection live on (HTTP/1.1,
    /// no `Connection: close`): once its response head is out, the parser
    /// may be let go and the connection parked.
    parkable: std::sync::atomic::AtomicBool,
    /// The request asked to switch protocols (a WebSocket handshake): the
    /// connection goes to the proxy through this if it answers 101.
    handover: std::sync::Mutex<Option<crate::upgrade::Handover>>,
    /// The response was a 101: the connection's bytes are the proxy's now.
    switched: std::sync::atomic::AtomicBool,
}

/// Serves a plain-TCP viewer connection, holding no parser state or buffers
/// while it sits idle between requests (as nginx frees its buffers on idle
/// keep-alive connections): each request gets a fresh HTTP/1 connection
/// state; once a bodiless request's response head is out, the parser is
/// asked to stop after that response, the socket is taken back with any
/// bytes read ahead, and the connection waits for its next request with
/// only the socket. Anything else (HTTP/2 prior knowledge, a request with a
/// body, `Connection: close`, HTTP/1.0) is served by the parser to the end as
/// before.
pub(super) async fn serve_plain(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    proxy: Arc<Proxy>,
    (limits, registered): (ViewerLimits, &shed::Registered),
    mut stop: watch::Receiver<bool>,
) {
    // A new connection's viewer has its first request on the way: when the
    // host stops meanwhile (a drain or a takeover), it is still waited for,
    // briefly, and answered.
    let first = tokio::select! {
        ready = stream.readable() => ready.is_ok(),
        () = tokio::time::sleep(HEADER_READ_TIMEOUT.min(limits.watchdog.idle)) => false,
        _ = stop.changed() => {
            tokio::time::timeout(FIRST_REQUEST_GRACE, stream.readable())
                .await
                .is_ok_and(|ready| ready.is_ok())
        }
    };
    if !first {
        return;
    }
    let wait = HEADER_READ_TIMEOUT.min(limits.watchdog.idle);
    let Some(h2) = starts_with_preface(&stream, wait).await else {
        return;
    };
    if h2 {
        let viewer = Viewer {
            peer,
            tls: false,
            certificate: None,
        };
        Box::pin(serve_connection(
            stream,
            viewer,
            Protocol::Http2,
            proxy,
            (limits, registered),
            stop,
        ))
        .await;
        return;
    }
    let (stream, progress) = deadline::Timed::new(stream);
    registered.track(&progress);
    let expired = limits.watchdog.expired(progress.clone());
    let serve = serve_plain_cycles(stream, progress, peer, proxy, limits, stop);
    tokio::select! {
        () = serve => {}
        why = expired => {
            tracing::debug!(%peer, deadline = why.as_str(), "viewer connection closed: past its deadline");
        }
    }
}

/// Whether the connection's first bytes are HTTP/2's preface (prior
/// knowledge), looking at as many as it takes to tell; `None` when the
/// connection ends first, or stalls for `wait` with fewer than four bytes
/// sent that could still be the preface.
async fn starts_with_preface(
    stream: &tokio::net::TcpStream,
    wait: std::time::Duration,
) -> Option<bool> {
    let mut start = [0u8; 4];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match stream.peek(&mut start).await {
            Ok(0) | Err(_) => return None,
            Ok(n) if !H2_PREFACE_START.starts_with(&start[..n]) => return Some(false),
            Ok(n) if n == start.len() => return Some(true),
            Ok(_) if tokio::time::Instant::now() >= deadline => return None,
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
        }
    }
}

/// [`serve_plain`]'s request cycles on a connection past its first byte.
async fn serve_plain_cycles(
    stream: deadline::Timed<tokio::net::TcpStream>,
    progress: Arc<deadline::Progress>,
    peer: SocketAddr,
    proxy: Arc<Proxy>,
    limits: ViewerLimits,
    mut stop: watch::Receiver<bool>,
) {
    use std::sync::atomic::{AtomicU64, Ordering};

    let (mut io, framing) =
        framing::Watched::new(stream, limits.max_header_bytes, limits.max_header_count);
    let served = Arc::new(AtomicU64::new(0));
    let mut leftover = bytes::Bytes::new();
    let mut stopped = Box::pin(async move {
        if !*stop.borrow_and_update() {
            let _ = stop.changed().await;
        }
    });
    loop {
        if leftover.is_empty() && served.load(Ordering::Relaxed) > 0 {
            let idle = tokio::select! {
                ready = io.get_ref().get_ref().readable() => ready.is_ok(),
                () = stopped.as_mut() => false,
                () = tokio::time::sleep(HEADER_READ_TIMEOUT) => false,
            };
            if !idle {
                return;
            }
        }
        framing.clear_wrote();
        let cycle = Arc::new(Cycle::default());
        let interim = crate::interim::Interim::new();
        let service = {
            let (served, framing, cycle, proxy, progress, interim) = (
                served.clone(),
                framing.clone(),
                cycle.clone(),
                proxy.clone(),
                progress.clone(),
                interim.clone(),
            );
            service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                use hyper::body::Body as _;
                let index = served.fetch_add(1, Ordering::Relaxed);
                if framing.is_ambiguous(index) {
                    req.extensions_mut().insert(crate::proxy::AmbiguousFraming);
                }
                if framing.is_oversized(index) {
                    req.extensions_mut().insert(crate::proxy::OversizedHead);
                }
                // This request's response head has not gone out yet.
                framing.clear_wrote();
                if req.version() == http::Version::HTTP_11 {
                    req.extensions_mut().insert(interim.sender());
                }
                let upgrading = req
                    .extensions_mut()
                    .remove::<hyper::upgrade::OnUpgrade>()
                    .is_some();
                if upgrading {
                    let (handover, upgrade) = crate::upgrade::ViewerUpgrade::channel();
                    req.extensions_mut().insert(upgrade);
                    *cycle
                        .handover
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(handover);
                }
                let closing = req
                    .headers()
                    .get_all(http::header::CONNECTION)
                    .iter()
                    .any(|v| {
                        v.to_str().is_ok_and(|v| {
                            v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
                        })
                    });
                cycle.parkable.store(
                    req.version() == http::Version::HTTP_11
                        && !closing
                        && !upgrading
                        && req.body().is_end_stream(),
                    Ordering::Release,
                );
                let in_flight = progress.request();
                let handled = proxy.clone().handle(req, peer, false);
                let (cycle, framing) = (cycle.clone(), framing.clone());
                Box::pin(async move {
                    let response = handled.await;
                    if upgrading
                        && response
                            .as_ref()
                            .is_ok_and(|r| r.status() == http::StatusCode::SWITCHING_PROTOCOLS)
                    {
                        cycle.switched.store(true, Ordering::Release);
                        framing.switched();
                    }
                    drop(in_flight);
                    response
                })
            })
        };
        let mut conn = Box::new(limits.http1().serve_connection(
            TokioIo::new(interim.wrap(framing::Rewind::new(std::mem::take(&mut leftover), io))),
            service,
        ));
        let (mut asked, mut stop_asked, mut stopping) = (false, false, false);
        let ended = std::future::poll_fn(|cx| {
            loop {
                if let std::task::Poll::Ready(result) = conn.poll_without_shutdown(cx) {
                    return std::task::Poll::Ready(result);
                }
                if !stop_asked && stopped.as_mut().poll(cx).is_ready() {
                    stop_asked = true;
                }
                // The host stops: end the connection after the response
                // going out (a cycle starts with a request arriving, which
                // is answered rather than reset).
                if stop_asked && !stopping && framing.wrote() {
                    stopping = true;
                    std::pin::Pin::new(&mut *conn).graceful_shutdown();
                    continue;
                }
                if !asked && framing.wrote() && cycle.parkable.load(Ordering::Acquire) {
                    asked = true;
                    std::pin::Pin::new(&mut *conn).graceful_shutdown();
                    continue;
                }
                return std::task::Poll::Pending;
            }
        })
        .await;
        if let Err(err) = &ended {
            tracing::debug!(%peer, error = %err, "viewer connection ended with an error");
        }
        // The 101 is out: the connection, with what the parser read past
        // the request, goes to the proxy's tunnel.
        if ended.is_ok() && cycle.switched.load(Ordering::Acquire) {
            let parts = conn.into_parts();
            let (unread, watched) = parts.io.into_inner().into_inner().into_parts();
            let ahead = read_ahead(parts.read_buf, &unread);
            let handover = cycle
                .handover
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if let Some(handover) = handover {
                handover.hand(framing::Rewind::new(ahead, watched));
            }
            return;
        }
        // The parser stopped on its own (the viewer closed, an error, a
        // request it would not keep the connection for) or the host stops:
        // the connection ends here, as it would have.
        if ended.is_err() || !asked || stop_asked {
            let parts = conn.into_parts();
            let mut rewind = parts.io.into_inner().into_inner();
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut rewind).await;
            return;
        }
        let parts = conn.into_parts();
        let (unread, watched) = parts.io.into_inner().into_inner().into_parts();
        io = watched;
        leftover = read_ahead(parts.read_buf, &unread);
    }
}

/// What was read past a request when its parser let the connection go:
/// hyper's buffer, then the prefix it had not read yet.
fn read_ahead(read_buf: bytes::Bytes, unread: &[u8]) -> bytes::Bytes {
    if unread.is_empty() {
        return read_buf;
    }
    let mut all = bytes::BytesMut::from(&read_buf[..]);
    all.extend_from_slice(unread);
    all.freeze()
}
