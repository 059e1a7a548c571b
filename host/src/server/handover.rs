//! Zero-downtime restarts: a running host hands its listening sockets to a
//! new one (`edge serve --take-over`), the way Pingora and HAProxy upgrade.
//!
//! The running host listens on `<data-dir>/handover.sock` (mode 0600). A new
//! host started with `--take-over` connects and asks; the old host lets go of
//! its store (the embedded database allows one process at a time) and sends
//! duplicates of its listeners over the socket (`SCM_RIGHTS`). The new host
//! opens the store and serves on those very sockets; when it says it is
//! serving, the old host stops accepting, drains what is in flight and exits.
//! No listening socket is ever closed, so no connection waiting in a listen
//! queue is lost, unlike a `SO_REUSEPORT` handover whose closing socket
//! resets its queue (unless `net.ipv4.tcp_migrate_req` is set). If the new
//! host fails before it serves, the old one takes its store back and goes on.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::store::Store;

/// How long an old host waits for the new one to say it serves.
const START_WAIT: Duration = Duration::from_secs(60);
/// At most this many listeners travel (viewer, control, HTTPS viewer).
const MAX_LISTENERS: usize = 3;

/// A handover that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("no host to take over at {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("handover with the running host: {0}")]
    Io(#[from] std::io::Error),
    #[error("the running host refused the handover: {0}")]
    Refused(String),
}

/// The listeners a new host got from the one it took over.
#[derive(Debug)]
pub struct Inherited {
    pub viewer: std::net::TcpListener,
    pub control: std::net::TcpListener,
    pub tls: Option<std::net::TcpListener>,
}

/// The new host's end of a handover: tell the old host when serving.
#[derive(Debug)]
pub struct Taken {
    stream: std::os::unix::net::UnixStream,
}

impl Taken {
    /// Tells the old host this one serves; it then stops accepting and drains.
    pub fn serving(mut self) -> Result<(), HandoverError> {
        use std::io::Write as _;
        self.stream.write_all(b"serving\n")?;
        Ok(())
    }
}

/// Where a host with data dir `data_dir` offers its listeners.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("handover.sock")
}

/// Asks the host offering at `path` for its listeners. Blocking: called
/// before this host starts.
pub fn take_over(path: &Path) -> Result<(Inherited, Taken), HandoverError> {
    use std::io::Write as _;
    let mut stream =
        std::os::unix::net::UnixStream::connect(path).map_err(|source| HandoverError::Connect {
            path: path.to_owned(),
            source,
        })?;
    stream.set_read_timeout(Some(START_WAIT))?;
    stream.write_all(b"take\n")?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_LISTENERS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut names = [0u8; 256];
    let received = rustix::net::recvmsg(
        &stream,
        &mut [IoSliceMut::new(&mut names)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            fds.extend(rights);
        }
    }
    let names = String::from_utf8_lossy(&names[..received.bytes]).into_owned();
    if let Some(reason) = names.strip_prefix("refused ") {
        return Err(HandoverError::Refused(reason.trim().to_owned()));
    }
    let names: Vec<&str> = names.trim().split(',').collect();
    if names.len() != fds.len() {
        return Err(HandoverError::Refused(format!(
            "sent {} sockets for {} names",
            fds.len(),
            names.len()
        )));
    }
    let (mut viewer, mut control_listener, mut tls) = (None, None, None);
    for (name, fd) in names.into_iter().zip(fds) {
        let listener = std::net::TcpListener::from(fd);
        listener.set_nonblocking(true)?;
        match name {
            "viewer" => viewer = Some(listener),
            "control" => control_listener = Some(listener),
            "tls" => tls = Some(listener),
            other => {
                return Err(HandoverError::Refused(format!(
                    "unknown listener {other:?}"
                )));
            }
        }
    }
    let (Some(viewer), Some(control_listener)) = (viewer, control_listener) else {
        return Err(HandoverError::Refused(
            "the viewer or control listener is missing".into(),
        ));
    };
    Ok((
        Inherited {
            viewer,
            control: control_listener,
            tls,
        },
        Taken { stream },
    ))
}

/// Offers `listeners` (name and a duplicate of each socket) at `path` until
/// shut down or handed over; sends on `handed_over` once a new host serves.
pub async fn offer(
    path: PathBuf,
    listeners: Vec<(&'static str, OwnedFd)>,
    store: Arc<dyn Store>,
    handed_over: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    // A socket file left by a crashed host would stop the bind.
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "no handover socket: --take-over cannot reach this host");
            return;
        }
    };
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "handover accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        match hand_over(stream, &listeners, &store).await {
            Ok(()) => {
                tracing::info!("a new host took over the listeners; draining");
                let _ = handed_over.send(true);
                // The socket file is the new host's now.
                return;
            }
            Err(err) => tracing::warn!(error = %err, "handover abandoned; serving on"),
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// One handover: the request, the store let go, the sockets sent, the new
/// host's word that it serves. On any failure the store is taken back.
async fn hand_over(
    stream: UnixStream,
    listeners: &[(&'static str, OwnedFd)],
    store: &Arc<dyn Store>,
) -> Result<(), HandoverError> {
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_line(&mut line))
        .await
        .map_err(|_| HandoverError::Refused("no request within 5 s".into()))??;
    if line.trim() != "take" {
        stream
            .get_mut()
            .write_all(b"refused unknown request\n")
            .await?;
        return Err(HandoverError::Refused(format!("asked {:?}", line.trim())));
    }
    store.release().await;
    let outcome = async {
        send_listeners(stream.get_ref(), listeners).await?;
        line.clear();
        let read = tokio::time::timeout(START_WAIT, stream.read_line(&mut line))
            .await
            .map_err(|_| HandoverError::Refused("the new host did not start in time".into()))??;
        if read == 0 || line.trim() != "serving" {
            return Err(HandoverError::Refused(
                "the new host stopped before serving".into(),
            ));
        }
        Ok(())
    }
    .await;
    if outcome.is_err()
        && let Err(err) = store.reacquire().await
    {
        tracing::error!(error = %err, "could not take the store back after a failed handover");
    }
    outcome
}

async fn send_listeners(
    stream: &UnixStream,
    listeners: &[(&'static str, OwnedFd)],
) -> Result<(), HandoverError> {
    let names = listeners
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(",");
    let fds: Vec<_> = listeners.iter().map(|(_, fd)| fd.as_fd()).collect();
    loop {
        stream.writable().await?;
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_LISTENERS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(HandoverError::Refused("too many listeners".into()));
        }
        match rustix::net::sendmsg(
            stream,
            &[IoSlice::new(names.as_bytes())],
            &mut control,
            SendFlags::empty(),
        ) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::AGAIN) => continue,
            Err(err) => return Err(std::io::Error::from(err).into()),
        }
    }
}
