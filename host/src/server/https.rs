//! HTTPS viewer connections: the TLS handshake, and the protocol ALPN
//! agreed on held to (HTTP/2 with its preface, or HTTP/1.1).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::connection::{
    FIRST_REQUEST_GRACE, HEADER_READ_TIMEOUT, Protocol, Viewer, ViewerLimits, serve_connection,
};
use super::{framing, shed};
use crate::proxy::Proxy;
use crate::tls;

/// How long a viewer may take to finish a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the HTTPS viewer listener serves with.
#[derive(Clone)]
pub(super) struct TlsViewers {
    pub(super) acceptor: tokio_rustls::TlsAcceptor,
    /// Where the handshakes' certificates come from.
    pub(super) certificates: Arc<tls::CertStore>,
    /// `--allow-domain-fronting`.
    pub(super) allow_domain_fronting: bool,
}

/// The HTTP/2 connection preface (RFC 9113 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a client that agreed on `h2` but sent no preface gets (RFC 9113
/// 3.4): the server's preface (an empty SETTINGS frame), then a GOAWAY with
/// last stream 0 and PROTOCOL_ERROR.
const H2_BAD_PREFACE: [u8; 26] = [
    0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS, no settings
    0, 0, 8, 0x7, 0, 0, 0, 0, 0, // GOAWAY, 8 bytes, stream 0
    0, 0, 0, 0, // last stream id
    0, 0, 0, 0x1, // PROTOCOL_ERROR
];

/// Completes a viewer's TLS handshake (within [`HANDSHAKE_TIMEOUT`]) and
/// serves the connection; a failed or slow handshake ends it.
pub(super) async fn serve_https(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: &TlsViewers,
    proxy: Arc<Proxy>,
    (limits, registered): (ViewerLimits, &shed::Registered),
    stop: watch::Receiver<bool>,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            // Boxed, so a plain connection's task is not sized for a TLS
            // one's state.
            Box::pin(serve_tls(
                stream,
                peer,
                tls,
                proxy,
                (limits, registered),
                stop,
            ))
            .await;
        }
        Ok(Err(err)) => {
            tracing::debug!(%peer, error = %err, "TLS handshake failed");
        }
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// Serves a viewer connection past its TLS handshake in the protocol ALPN
/// agreed on and in that one alone (RFC 9113 3.2, RFC 7301): after `h2`,
/// bytes that are not the HTTP/2 preface get a GOAWAY and the connection
/// closes; after `http/1.1` (or no ALPN), an HTTP/2 preface is an HTTP/1.1
/// request hyper refuses.
async fn serve_tls(
    mut stream: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    peer: SocketAddr,
    tls: &TlsViewers,
    proxy: Arc<Proxy>,
    (limits, registered): (ViewerLimits, &shed::Registered),
    stop: watch::Receiver<bool>,
) {
    let (_, session) = stream.get_ref();
    let h2 = session.alpn_protocol() == Some(b"h2");
    // Without SNI there is no handshake (the resolver has no name to choose
    // by), so every connection here has the certificate of its name.
    let certificate = (!tls.allow_domain_fronting).then(|| {
        tls::ServedCertificate::for_name(&tls.certificates, session.server_name().unwrap_or(""))
    });
    let viewer = Viewer {
        peer,
        tls: true,
        certificate,
    };
    let (prefix, protocol) = if h2 {
        match read_preface(&mut stream, limits, stop.clone()).await {
            Some(preface) => (preface, Protocol::Http2),
            None => return,
        }
    } else {
        (bytes::Bytes::new(), Protocol::Http1)
    };
    let io = framing::Rewind::new(prefix, stream);
    serve_connection(io, viewer, protocol, proxy, (limits, registered), stop).await;
}

/// Reads the HTTP/2 preface of a connection that agreed on `h2`, within the
/// head timeout (and a moment once the host stops). Anything else is
/// answered with a GOAWAY and the connection closed; `None` then, and when
/// the viewer closes or stays silent.
async fn read_preface<IO>(
    io: &mut IO,
    limits: ViewerLimits,
    mut stop: watch::Receiver<bool>,
) -> Option<bytes::Bytes>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let read = async {
        let mut got = [0u8; H2_PREFACE.len()];
        let mut filled = 0;
        while filled < got.len() {
            let n = io.read(&mut got[filled..]).await.ok()?;
            if n == 0 {
                return None;
            }
            if got[filled..filled + n] != H2_PREFACE[filled..filled + n] {
                return Some(Err(()));
            }
            filled += n;
        }
        Some(Ok(bytes::Bytes::copy_from_slice(&got)))
    };
    tokio::pin!(read);
    let read = tokio::select! {
        got = tokio::time::timeout(HEADER_READ_TIMEOUT.min(limits.watchdog.idle), &mut read) => got,
        _ = stop.changed() => tokio::time::timeout(FIRST_REQUEST_GRACE, &mut read).await,
    };
    match read.ok().flatten()? {
        Ok(preface) => Some(preface),
        Err(()) => {
            let refuse = async {
                io.write_all(&H2_BAD_PREFACE).await?;
                io.shutdown().await
            };
            let _ = tokio::time::timeout(limits.watchdog.send, refuse).await;
            None
        }
    }
}
