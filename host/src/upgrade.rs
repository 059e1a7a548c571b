//! A viewer connection handed on after `101 Switching Protocols` (a
//! WebSocket): the server puts a [`ViewerUpgrade`] in the request's
//! extensions, and the proxy, once it answered 101, waits on it for the
//! connection's bytes, whichever way the server read the request.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

/// A connection's bytes in both directions.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// The viewer's connection once it switched protocols, with any bytes the
/// server had read ahead of the switch first.
pub type Switched = Box<dyn Io>;

/// Why the viewer's connection was not handed on.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the viewer connection was not handed over: {0}")]
pub struct UpgradeError(String);

type Pending = Pin<Box<dyn Future<Output = Result<Switched, UpgradeError>> + Send>>;

/// In a request's extensions: the viewer's connection, on its way once the
/// response to that request, a `101`, has been written. Clones share the
/// one connection; the first [`ViewerUpgrade::switched`] takes it.
#[derive(Clone)]
pub struct ViewerUpgrade(Arc<Mutex<Option<Pending>>>);

impl std::fmt::Debug for ViewerUpgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewerUpgrade").finish_non_exhaustive()
    }
}

impl ViewerUpgrade {
    fn new(pending: Pending) -> Self {
        Self(Arc::new(Mutex::new(Some(pending))))
    }

    /// The connection hyper's server hands over on its own (its
    /// `with_upgrades` connections).
    pub fn from_hyper(on: hyper::upgrade::OnUpgrade) -> Self {
        Self::new(Box::pin(async move {
            let upgraded = on.await.map_err(|e| UpgradeError(e.to_string()))?;
            Ok(Box::new(hyper_util::rt::TokioIo::new(upgraded)) as Switched)
        }))
    }

    /// A connection the server hands over itself, through the returned
    /// [`Handover`].
    pub fn channel() -> (Handover, Self) {
        let (tx, rx) = oneshot::channel();
        let pending = Box::pin(async move {
            rx.await
                .map_err(|_| UpgradeError("the connection ended before the switch".to_owned()))
        });
        (Handover(tx), Self::new(pending))
    }

    /// Waits for the connection (after the `101` is written).
    pub async fn switched(&self) -> Result<Switched, UpgradeError> {
        let pending = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| UpgradeError("already taken".to_owned()))?;
        pending.await
    }
}

/// The server's end of [`ViewerUpgrade::channel`].
pub struct Handover(oneshot::Sender<Switched>);

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handover").finish_non_exhaustive()
    }
}

impl Handover {
    /// Hands the connection to whoever waits on the upgrade; dropped
    /// (closed) when no one does any more.
    pub fn hand(self, io: impl Io) {
        let _ = self.0.send(Box::new(io));
    }
}
