//! Bodies read whole for the hooks that include them (`include_body`): the
//! viewer's request body before viewer-request or origin-request, the
//! origin's response body before origin-response, each up to its
//! association's limit.
//!
//! A body within the limit is read whole and goes on from memory. A longer
//! one is refused (`reject`: 413 for the viewer's, 502 for the origin's) or
//! given to the hook truncated (`truncate`): the hook sees its first bytes
//! and `body-truncated`, and the body goes on whole, what was read first and
//! then the rest as it streams. Nothing is buffered for a hook that does not
//! include the body.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;

use crate::error::ProxyError;
use crate::origin::{BoxError, OriginError, ViewerBody};
use crate::wasm::BodyRead;
use crate::wasm::stage::SeenBody;

/// How long a viewer may pause between two pieces of a body read for a
/// hook (nginx's `client_body_timeout` is 60 s too).
pub(super) const VIEWER_BODY_IDLE: Duration = Duration::from_secs(60);

/// What was read of a body: the bytes, then what is left of it, if anything.
struct Read<B> {
    bytes: Bytes,
    /// The rest: `None` when the body ended within the limit.
    rest: Option<B>,
    trailers: Option<HeaderMap>,
}

/// Why a body could not be read.
enum ReadError<E> {
    Body(E),
    Idle,
}

/// Reads `body` until it ends or more than `limit` bytes came.
async fn read_up_to<B>(
    mut body: B,
    limit: usize,
    idle: Duration,
) -> Result<Read<B>, ReadError<B::Error>>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut buf = BytesMut::new();
    let mut trailers = None;
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(ReadError::Idle),
            Ok(None) => {
                return Ok(Read {
                    bytes: buf.freeze(),
                    rest: None,
                    trailers,
                });
            }
            Ok(Some(Err(err))) => return Err(ReadError::Body(err)),
            Ok(Some(Ok(frame))) => frame,
        };
        match frame.into_data() {
            Ok(data) => {
                buf.extend_from_slice(&data);
                if buf.len() > limit {
                    return Ok(Read {
                        bytes: buf.freeze(),
                        rest: Some(body),
                        trailers: None,
                    });
                }
            }
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
}

/// What a hook is shown of a body read up to `limit`.
fn seen(bytes: &Bytes, limit: usize) -> SeenBody {
    SeenBody {
        bytes: bytes.slice(..bytes.len().min(limit)),
        truncated: bytes.len() > limit,
    }
}

/// Reads the viewer's body for a request event: what the hook sees, and
/// the body that goes on (whole, as read and then the rest).
pub(super) async fn read_viewer(
    body: ViewerBody,
    read: BodyRead,
) -> Result<(SeenBody, ViewerBody), ProxyError> {
    let got = read_up_to(body, read.limit, VIEWER_BODY_IDLE)
        .await
        .map_err(|err| ProxyError::BadBody {
            reason: match err {
                ReadError::Body(err) => err.to_string(),
                ReadError::Idle => format!("nothing arrived for {VIEWER_BODY_IDLE:?}"),
            },
        })?;
    if got.rest.is_some() && read.reject {
        return Err(ProxyError::BodyTooLarge { limit: read.limit });
    }
    let shown = seen(&got.bytes, read.limit);
    let body = Prefixed {
        head: Some(got.bytes),
        rest: got.rest,
        trailers: got.trailers,
    };
    Ok((shown, body.boxed_unsync()))
}

/// The origin's body read for origin-response.
pub(super) struct OriginRead<B> {
    pub seen: SeenBody,
    /// Everything read, the whole body when `rest` is `None`.
    pub bytes: Bytes,
    pub rest: Option<B>,
}

/// Reads the origin's body for origin-response, pausing no longer than
/// `idle` (the origin's read timeout) between pieces.
pub(super) async fn read_origin<B>(
    body: B,
    read: BodyRead,
    idle: Duration,
    origin: &str,
) -> Result<OriginRead<B>, ProxyError>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    let got = read_up_to(body, read.limit, idle)
        .await
        .map_err(|err| match err {
            ReadError::Body(err) => OriginError::Protocol {
                origin: origin.to_owned(),
                reason: format!("reading its body for origin-response: {err}"),
            },
            ReadError::Idle => OriginError::Timeout {
                origin: origin.to_owned(),
                timeout: idle,
            },
        })?;
    if got.rest.is_some() && read.reject {
        return Err(ProxyError::OriginBodyTooLarge { limit: read.limit });
    }
    Ok(OriginRead {
        seen: seen(&got.bytes, read.limit),
        bytes: got.bytes,
        rest: got.rest,
    })
}

/// A body of which the first bytes were read already: those, then the
/// rest as it comes (and the trailers of a body that ended while read).
struct Prefixed<B> {
    head: Option<Bytes>,
    rest: Option<B>,
    trailers: Option<HeaderMap>,
}

impl<B> Body for Prefixed<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(head) = this.head.take().filter(|h| !h.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if let Some(rest) = this.rest.as_mut() {
            return Pin::new(rest).poll_frame(cx);
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.head.as_ref().is_none_or(Bytes::is_empty)
            && self.rest.as_ref().is_none_or(B::is_end_stream)
            && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let head = self.head.as_ref().map_or(0, Bytes::len);
        match &self.rest {
            None => SizeHint::with_exact(head as u64),
            Some(rest) => super::body::hint_after(head, rest.size_hint()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use http_body_util::Full;

    /// A body that yields its frames one poll each.
    struct Frames(VecDeque<Frame<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(Ok))
        }
    }

    fn chunks(parts: &[&'static [u8]]) -> ViewerBody {
        let frames = parts
            .iter()
            .map(|p| Frame::data(Bytes::from_static(p)))
            .collect();
        Frames(frames).boxed_unsync()
    }

    async fn all(body: ViewerBody) -> Vec<u8> {
        body.collect().await.expect("body").to_bytes().to_vec()
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole_and_goes_on_as_it_was() {
        let read = BodyRead {
            limit: 10,
            reject: true,
        };
        let (seen, body) = read_viewer(chunks(&[b"abc", b"defgh"]), read)
            .await
            .expect("read");
        assert_eq!(&seen.bytes[..], b"abcdefgh");
        assert!(!seen.truncated);
        assert_eq!(body.size_hint().exact(), Some(8));
        assert_eq!(all(body).await, b"abcdefgh");
    }

    #[tokio::test]
    async fn a_longer_body_is_shown_truncated_and_goes_on_whole() {
        let read = BodyRead {
            limit: 4,
            reject: false,
        };
        let (seen, body) = read_viewer(chunks(&[b"abc", b"defgh", b"ij"]), read)
            .await
            .expect("read");
        assert_eq!(&seen.bytes[..], b"abcd");
        assert!(seen.truncated);
        assert_eq!(all(body).await, b"abcdefghij");
    }

    #[tokio::test]
    async fn a_longer_body_is_refused_when_the_association_rejects() {
        let read = BodyRead {
            limit: 4,
            reject: true,
        };
        let err = read_viewer(chunks(&[b"abcde"]), read).await.err();
        assert!(
            matches!(err, Some(ProxyError::BodyTooLarge { limit: 4 })),
            "{err:?}"
        );
        // Exactly the limit is within it.
        let (seen, _) = read_viewer(chunks(&[b"ab", b"cd"]), read)
            .await
            .expect("read");
        assert!(!seen.truncated);
    }

    #[tokio::test]
    async fn trailers_of_a_body_read_whole_still_follow_it() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", "1".parse().expect("value"));
        let frames = [
            Frame::data(Bytes::from_static(b"ab")),
            Frame::trailers(trailers),
        ];
        let body = Frames(frames.into()).boxed_unsync();
        let read = BodyRead {
            limit: 10,
            reject: false,
        };
        let (_, body) = read_viewer(body, read).await.expect("read");
        let collected = body.collect().await.expect("body");
        assert_eq!(
            collected.trailers().and_then(|t| t.get("x-sum")),
            Some(&http::HeaderValue::from_static("1"))
        );
    }

    #[tokio::test]
    async fn an_empty_body_is_shown_empty() {
        let read = BodyRead {
            limit: 10,
            reject: false,
        };
        let body = Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed_unsync();
        let (seen, body) = read_viewer(body, read).await.expect("read");
        assert!(seen.bytes.is_empty() && !seen.truncated);
        assert!(body.is_end_stream());
    }
}
