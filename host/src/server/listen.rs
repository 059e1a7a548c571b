//! The listeners' accept loops: viewer connections (plain or HTTPS) and
//! control API connections, each served on a task of its own, and what an
//! accept does when the descriptors run out.

use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::connection::{HEADER_READ_TIMEOUT, ViewerLimits};
use super::https::{TlsViewers, serve_https};
use super::plain::serve_plain;
use super::{deadline, shed};
use crate::control::ControlApi;
use crate::limits::VIEWER_UNSENT_BYTES;
use crate::proxy::Proxy;

pub(super) async fn serve_viewers(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    (limits, connections): (ViewerLimits, Arc<shed::Connections>),
    tls: Option<TlsViewers>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    let mut reserve = shed::Reserve::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    out_of_descriptors(&err, &connections, &mut reserve, "viewer").await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        reserve.refill();
        let _ = stream.set_nodelay(true);
        bound_unsent(&stream);
        let (proxy, stop, tls) = (proxy.clone(), shutdown.clone(), tls.clone());
        let registered = connections.register();
        conns.spawn(async move {
            let serve = async {
                match tls {
                    None => serve_plain(stream, peer, proxy, (limits, &registered), stop).await,
                    Some(tls) => {
                        serve_https(stream, peer, &tls, proxy, (limits, &registered), stop).await
                    }
                }
            };
            tokio::select! {
                () = serve => {}
                () = registered.shed() => {
                    tracing::debug!(%peer, "idle viewer connection closed: out of file descriptors");
                }
            }
        });
        // Reap finished connection tasks so the set does not grow.
        while conns.try_join_next().is_some() {}
    }
    while conns.join_next().await.is_some() {}
}

/// After a failed accept: out of descriptors, frees the reserve and sheds
/// the longest-idle viewer connections; backs off when that freed nothing
/// (or for any other error), so the loop never spins on a listener that
/// stays readable.
async fn out_of_descriptors(
    err: &std::io::Error,
    connections: &shed::Connections,
    reserve: &mut shed::Reserve,
    listener: &str,
) {
    if shed::is_descriptor_exhaustion(err) {
        connections.note_exhausted();
        reserve.release();
        let shed = connections.shed_idle(shed::SHED_BATCH);
        tracing::warn!(
            listener,
            shed,
            "accept failed: out of file descriptors; shedding idle viewer connections"
        );
        if shed > 0 {
            // Let the shed connections' tasks run and close their sockets.
            tokio::task::yield_now().await;
            return;
        }
    } else {
        tracing::warn!(listener, error = %err, "accept failed");
    }
    tokio::time::sleep(shed::ACCEPT_BACKOFF).await;
}

pub(super) async fn serve_control(
    listener: TcpListener,
    api: Arc<ControlApi>,
    (watchdog, viewers): (deadline::Watchdog, Arc<shed::Connections>),
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    let mut reserve = shed::Reserve::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Viewers that exhausted the descriptors do not lock
                    // the operator out: their idle connections go first.
                    out_of_descriptors(&err, &viewers, &mut reserve, "control").await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        reserve.refill();
        let api = api.clone();
        conns.spawn(serve_http1(
            stream,
            watchdog,
            shutdown.clone(),
            "control",
            move |req| api.clone().handle(req),
        ));
        while conns.try_join_next().is_some() {}
    }
    while conns.join_next().await.is_some() {}
}

/// Serves the cache cluster's internal listener: other members' requests,
/// each answered by [`Proxy::serve_member`].
pub(super) async fn serve_members(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    watchdog: deadline::Watchdog,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(listener = "cluster", error = %err, "accept failed");
                    tokio::time::sleep(shed::ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        conns.spawn(serve_http1(
            stream,
            watchdog,
            shutdown.clone(),
            "cluster",
            move |req| {
                let served = proxy.clone().serve_member(req);
                async move { Ok::<_, std::convert::Infallible>(served.await) }
            },
        ));
        while conns.try_join_next().is_some() {}
    }
    while conns.join_next().await.is_some() {}
}

/// One connection of an internal listener (the control API's, the cache
/// cluster's), its HTTP/1.1 requests answered by `handle`, closed past the
/// connection deadlines, drained when the host stops.
async fn serve_http1<F, Fut, B>(
    stream: tokio::net::TcpStream,
    watchdog: deadline::Watchdog,
    mut stop: watch::Receiver<bool>,
    listener: &'static str,
    handle: F,
) where
    F: Fn(http::Request<hyper::body::Incoming>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<http::Response<B>, std::convert::Infallible>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (stream, progress) = deadline::Timed::new(stream);
    let watched = progress.clone();
    let service = service_fn(move |req| {
        let in_flight = watched.request();
        let handled = handle(req);
        async move {
            let response = handled.await;
            drop(in_flight);
            response
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT.min(watchdog.idle))
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let expired = watchdog.expired(progress);
    tokio::select! {
        _ = conn.as_mut() => {}
        why = expired => {
            tracing::debug!(listener, deadline = why.as_str(), "connection closed: past its deadline");
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Holds a viewer's unsent response bytes in the kernel to
/// [`VIEWER_UNSENT_BYTES`], so connections that stop reading cannot fill the
/// machine's TCP memory (which slows every other connection once the kernel
/// is under memory pressure).
fn bound_unsent(stream: &tokio::net::TcpStream) {
    if let Err(err) = socket2::SockRef::from(stream).set_tcp_notsent_lowat(VIEWER_UNSENT_BYTES) {
        tracing::debug!(error = %err, "TCP_NOTSENT_LOWAT not set");
    }
}
