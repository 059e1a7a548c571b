//! One viewer connection served by hyper in HTTP/1.1 or HTTP/2, held to
//! the head limits and the connection deadlines until it ends or the host
//! stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::watch;

use super::{deadline, framing, h2_trailers, shed};
use crate::proxy::Proxy;
use crate::tls;

/// How long an idle viewer may take to send a request head.
pub(super) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a new connection's first request is waited for once the host
/// stops.
pub(super) const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// Limits on what a viewer request head may hold.
#[derive(Debug, Clone, Copy)]
pub(super) struct ViewerLimits {
    pub(super) max_header_count: usize,
    pub(super) max_header_bytes: usize,
    /// When a connection is closed for idling or for not reading.
    pub(super) watchdog: deadline::Watchdog,
}

impl ViewerLimits {
    /// hyper's read buffer: twice the head limit, so that hyper parses
    /// every head up to the limit however its bytes arrive, and the watch
    /// on the connection (`framing.rs`) refuses the longer ones exactly.
    pub(super) fn parser_buffer(&self) -> usize {
        self.max_header_bytes.saturating_mul(2)
    }

    /// hyper's HTTP/1.1 server as every viewer connection gets it: the
    /// head's read timeout and limits, keep-alive.
    pub(super) fn http1(&self) -> http1::Builder {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(true)
            .max_headers(self.max_header_count)
            .max_buf_size(self.parser_buffer());
        builder
    }
}

/// Which protocol a connection is served with.
#[derive(Debug, Clone, Copy)]
pub(super) enum Protocol {
    /// HTTP/1.1 alone (TLS agreed on `http/1.1`, or on nothing).
    Http1,
    /// HTTP/2 alone (TLS agreed on `h2`, or its preface in clear).
    Http2,
}

/// Who a viewer connection is, for each of its requests.
#[derive(Debug, Clone)]
pub(super) struct Viewer {
    pub(super) peer: SocketAddr,
    pub(super) tls: bool,
    /// The certificate a TLS connection was opened with, when requests are
    /// held to its names (no `--allow-domain-fronting`).
    pub(super) certificate: Option<tls::ServedCertificate>,
}

/// Serves one viewer connection in `protocol` until it ends or the host
/// shuts down.
pub(super) async fn serve_connection<IO>(
    io: IO,
    viewer: Viewer,
    protocol: Protocol,
    proxy: Arc<Proxy>,
    (limits, registered): (ViewerLimits, &shed::Registered),
    stop: watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Viewer {
        peer,
        tls,
        certificate,
    } = viewer;
    let (io, progress) = deadline::Timed::new(io);
    registered.track(&progress);
    let (io, framing) = framing::Watched::new(io, limits.max_header_bytes, limits.max_header_count);
    let io = h2_trailers::Watched::new(io, !matches!(protocol, Protocol::Http1));
    let interim = crate::interim::Interim::new();
    let io = interim.wrap(io);
    let served = std::sync::atomic::AtomicU64::new(0);
    let watched = progress.clone();
    let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        let index = served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if framing.is_ambiguous(index) {
            req.extensions_mut().insert(crate::proxy::AmbiguousFraming);
        }
        if framing.is_oversized(index) {
            req.extensions_mut().insert(crate::proxy::OversizedHead);
        }
        if let Some(certificate) = &certificate {
            req.extensions_mut().insert(certificate.clone());
        }
        // A request to switch protocols (a WebSocket handshake): the
        // connection is handed to the proxy if it answers 101.
        if let Some(on) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() {
            req.extensions_mut()
                .insert(crate::upgrade::ViewerUpgrade::from_hyper(on));
        }
        // 1xx responses reach HTTP/1.1 viewers only (RFC 9110 15.2).
        if req.version() == http::Version::HTTP_11 {
            req.extensions_mut().insert(interim.sender());
        }
        let in_flight = watched.request();
        let handled = proxy.clone().handle(req, peer, tls);
        let framing = framing.clone();
        // Boxed: hyper keeps the space for one in-flight request future for
        // the life of the connection, and the proxy's future is tens of KiB.
        // Boxing each request's future keeps an idle keep-alive connection
        // from holding that space.
        Box::pin(async move {
            let response = handled.await;
            if response
                .as_ref()
                .is_ok_and(|r| r.status() == http::StatusCode::SWITCHING_PROTOCOLS)
            {
                framing.switched();
            }
            drop(in_flight);
            response
        })
    });
    let io = TokioIo::new(io);
    match protocol {
        Protocol::Http1 => {
            // With upgrades: a WebSocket handshake's connection goes to the
            // proxy after its 101.
            let conn = limits.http1().serve_connection(io, service).with_upgrades();
            drive(
                conn,
                |c| c.graceful_shutdown(),
                peer,
                limits,
                progress,
                stop,
            )
            .await;
        }
        Protocol::Http2 => {
            let mut builder = http2::Builder::new(TokioExecutor::new());
            builder
                .timer(TokioTimer::new())
                .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
                // WebSockets over HTTP/2 (RFC 8441's extended CONNECT).
                .enable_connect_protocol();
            let conn = builder.serve_connection(io, service);
            drive(
                conn,
                |c| c.graceful_shutdown(),
                peer,
                limits,
                progress,
                stop,
            )
            .await;
        }
    }
}

/// Runs `conn` until it ends, its deadline passes, or the host stops (then
/// `graceful_shutdown` has it finish what is in flight, within its
/// deadline).
async fn drive<C: Future<Output = Result<(), hyper::Error>>>(
    conn: C,
    graceful_shutdown: fn(Pin<&mut C>),
    peer: SocketAddr,
    limits: ViewerLimits,
    progress: Arc<deadline::Progress>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::pin!(conn);
    let expired = limits.watchdog.expired(progress.clone());
    tokio::pin!(expired);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(err) = res {
                tracing::debug!(%peer, error = %err, "viewer connection ended with an error");
            }
        }
        why = expired.as_mut() => {
            tracing::debug!(%peer, deadline = why.as_str(), "viewer connection closed: past its deadline");
        }
        _ = stop.changed() => {
            graceful_shutdown(conn.as_mut());
            tokio::select! {
                _ = conn => {}
                why = expired => {
                    tracing::debug!(%peer, deadline = why.as_str(), "viewer connection closed while draining: past its deadline");
                }
            }
        }
    }
}
