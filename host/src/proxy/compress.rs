//! Compression at the edge (CloudFront's "compress objects automatically"):
//! a behavior with `compress` normalizes the viewer's `Accept-Encoding` to
//! the one encoding the host would answer with, and compresses a
//! compressible response the origin sent in identity.
//!
//! - **Which encoding**: brotli, then zstd, then gzip, the first the viewer
//!   accepts (q > 0); `identity` when it accepts none, and for a request
//!   with `Range` (a range applies to the identity bytes). The request's
//!   `Accept-Encoding` becomes that one token, so the origin is asked for
//!   it (an origin that compresses itself answers in it) and the cache's
//!   `Vary: Accept-Encoding` variants number four at most.
//! - **What is compressed**: a `200`, `403` or `404` with no
//!   `Content-Encoding` (or `identity`), no `Cache-Control: no-transform`,
//!   a compressible type (text, JSON, JavaScript, XML, SVG, fonts, wasm;
//!   not `text/event-stream`), and a length, when known, between
//!   [`MIN_BYTES`] and [`MAX_BYTES`] (CloudFront's floor and ceiling). Such
//!   a response gets `Vary: Accept-Encoding` whatever this viewer accepts,
//!   so each encoding is stored apart; anything else is stored once for all.
//! - **How**: `Content-Encoding` set, `Content-Length` dropped, a strong
//!   `ETag` made weak (RFC 9110 8.8.1: the encoded bytes differ); the body
//!   is encoded as it streams (flushed at each of the origin's chunks when
//!   its length is unknown, so a streamed page still streams) and the
//!   cache stores the encoded copy.

use std::io::Write as _;

use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, RANGE,
    VARY,
};
use http::{HeaderMap, HeaderValue, StatusCode};

/// The smallest body compressed, in bytes (CloudFront's).
pub const MIN_BYTES: u64 = 1_000;

/// The largest body compressed, in bytes (CloudFront's).
pub const MAX_BYTES: u64 = 10_000_000;

/// An encoding the host answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Brotli,
    Zstd,
    Gzip,
    Identity,
}

impl Encoding {
    /// By the host's preference: the smallest output first.
    const PREFERENCE: [Self; 3] = [Self::Brotli, Self::Zstd, Self::Gzip];

    pub fn token(self) -> &'static str {
        match self {
            Self::Brotli => "br",
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
            Self::Identity => "identity",
        }
    }

    fn from_token(token: &str) -> Option<Self> {
        [Self::Brotli, Self::Zstd, Self::Gzip, Self::Identity]
            .into_iter()
            .find(|e| token.eq_ignore_ascii_case(e.token()))
    }
}

/// The encoding a request is answered with: the first of brotli, zstd and
/// gzip its `Accept-Encoding` accepts, else identity; identity for a range.
pub fn negotiate(headers: &HeaderMap) -> Encoding {
    if headers.contains_key(RANGE) {
        return Encoding::Identity;
    }
    // Each coding's q-value, and the wildcard's (RFC 9110 12.5.3).
    let mut named: Vec<(Encoding, bool)> = Vec::new();
    let mut any = None;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let accepted = parts
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .is_none_or(|(_, q)| q.trim().parse::<f32>().is_ok_and(|q| q > 0.0));
            if coding == "*" {
                any = Some(accepted);
            } else if let Some(encoding) = Encoding::from_token(coding) {
                named.push((encoding, accepted));
            }
        }
    }
    Encoding::PREFERENCE
        .into_iter()
        .find(|e| {
            named
                .iter()
                .find(|(n, _)| n == e)
                .map_or(any == Some(true), |(_, accepted)| *accepted)
        })
        .unwrap_or(Encoding::Identity)
}

/// Normalizes a request's `Accept-Encoding` to the one encoding it will be
/// answered with; returns that encoding.
pub fn normalize(headers: &mut HeaderMap) -> Encoding {
    let encoding = negotiate(headers);
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static(encoding.token()));
    encoding
}

/// Whether a response may be compressed (whatever the viewer accepts):
/// status, encoding, `no-transform`, type and length (`len`, when known).
pub fn compressible(status: StatusCode, headers: &HeaderMap, len: Option<u64>) -> bool {
    if !matches!(status.as_u16(), 200 | 403 | 404) {
        return false;
    }
    let encoded = headers
        .get(CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let no_transform = headers.get_all(CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
        })
    });
    let len = len.or_else(|| {
        headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    });
    !encoded
        && !no_transform
        && len.is_none_or(|len| (MIN_BYTES..=MAX_BYTES).contains(&len))
        && headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(compressible_type)
}

/// Types that compress well: text (but event streams, which must not wait
/// on an encoder), JSON, JavaScript, XML and their `+json`/`+xml` kin, SVG,
/// uncompressed fonts, wasm.
fn compressible_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "text/event-stream" {
        return false;
    }
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/javascript"
                | "application/x-javascript"
                | "application/ecmascript"
                | "application/xml"
                | "application/wasm"
                | "application/x-font-ttf"
                | "application/x-font-opentype"
                | "application/vnd.ms-fontobject"
                | "font/ttf"
                | "font/otf"
                | "image/svg+xml"
                | "image/x-icon"
                | "image/vnd.microsoft.icon"
                | "image/bmp"
        )
}

/// Marks a compressible response as varying on `Accept-Encoding`.
pub fn add_vary(headers: &mut HeaderMap) {
    let listed = headers.get_all(VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|n| {
                let n = n.trim();
                n == "*" || n.eq_ignore_ascii_case("accept-encoding")
            })
        })
    });
    if !listed {
        headers.append(VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// The response fields of a body encoded with `encoding`.
pub fn encoded_head(headers: &mut HeaderMap, encoding: Encoding) {
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding.token()));
    headers.remove(CONTENT_LENGTH);
    let strong = headers
        .get(ETAG)
        .filter(|v| v.as_bytes().starts_with(b"\""))
        .cloned();
    if let Some(etag) = strong {
        let mut weak = b"W/".to_vec();
        weak.extend_from_slice(etag.as_bytes());
        if let Ok(weak) = HeaderValue::from_bytes(&weak) {
            headers.insert(ETAG, weak);
        }
    }
}

/// A body's encoder, fed a chunk at a time.
pub struct Encoder {
    inner: Inner,
    /// Flush at each chunk (a body whose length was not known: it may be
    /// streamed, and its viewer should see each chunk as it comes).
    flush_each: bool,
}

enum Inner {
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Done,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("flush_each", &self.flush_each)
            .finish_non_exhaustive()
    }
}

/// brotli's quality and window for on-the-fly compression: quality 5
/// compresses close to 11's ratio on text at a small share of its CPU.
const BROTLI_QUALITY: u32 = 5;
const BROTLI_WINDOW: u32 = 22;
/// zstd's default level.
const ZSTD_LEVEL: i32 = 3;

impl Encoder {
    /// An encoder for `encoding` (none for identity).
    pub fn new(encoding: Encoding, flush_each: bool) -> Option<Self> {
        let inner = match encoding {
            Encoding::Identity => return None,
            Encoding::Brotli => Inner::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                16 * 1024,
                BROTLI_QUALITY,
                BROTLI_WINDOW,
            ))),
            Encoding::Zstd => {
                Inner::Zstd(zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL).ok()?)
            }
            Encoding::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            )),
        };
        Some(Self { inner, flush_each })
    }

    /// Encodes `chunk`; gives what the encoder has let out so far (maybe
    /// nothing yet).
    pub fn chunk(&mut self, chunk: &[u8]) -> std::io::Result<Bytes> {
        let flush = self.flush_each;
        let out = match &mut self.inner {
            Inner::Brotli(w) => {
                w.write_all(chunk)?;
                if flush {
                    w.flush()?;
                }
                w.get_mut()
            }
            Inner::Zstd(w) => {
                w.write_all(chunk)?;
                if flush {
                    w.flush()?;
                }
                w.get_mut()
            }
            Inner::Gzip(w) => {
                w.write_all(chunk)?;
                if flush {
                    w.flush()?;
                }
                w.get_mut()
            }
            Inner::Done => return Ok(Bytes::new()),
        };
        Ok(Bytes::from(std::mem::take(out)))
    }

    /// Ends the stream: what is left of it.
    pub fn finish(&mut self) -> std::io::Result<Bytes> {
        let out = match std::mem::replace(&mut self.inner, Inner::Done) {
            Inner::Brotli(w) => w.into_inner(),
            Inner::Zstd(w) => w.finish()?,
            Inner::Gzip(w) => w.finish()?,
            Inner::Done => Vec::new(),
        };
        Ok(Bytes::from(out))
    }

    /// A whole body, encoded.
    pub fn whole(encoding: Encoding, body: &[u8]) -> std::io::Result<Bytes> {
        let Some(mut encoder) = Self::new(encoding, false) else {
            return Ok(Bytes::copy_from_slice(body));
        };
        let mut out = encoder.chunk(body)?.to_vec();
        out.extend_from_slice(&encoder.finish()?);
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Encoding {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_str(value).expect("value"),
        );
        negotiate(&headers)
    }

    #[test]
    fn the_viewers_accept_encoding_picks_one_encoding() {
        assert_eq!(accept("gzip, deflate, br, zstd"), Encoding::Brotli);
        assert_eq!(accept("gzip, zstd"), Encoding::Zstd);
        assert_eq!(accept("gzip"), Encoding::Gzip);
        assert_eq!(accept("GZIP;q=0.5"), Encoding::Gzip);
        assert_eq!(accept("br;q=0, gzip"), Encoding::Gzip);
        assert_eq!(accept("br;q=0.0, gzip;q=0"), Encoding::Identity);
        assert_eq!(accept("deflate"), Encoding::Identity);
        assert_eq!(accept("identity"), Encoding::Identity);
        assert_eq!(accept("*"), Encoding::Brotli);
        assert_eq!(accept("*;q=0, gzip"), Encoding::Gzip);
        assert_eq!(accept("br;q=0, *"), Encoding::Zstd);
        assert_eq!(negotiate(&HeaderMap::new()), Encoding::Identity);
        let mut ranged = HeaderMap::new();
        ranged.insert(ACCEPT_ENCODING, HeaderValue::from_static("br"));
        ranged.insert(RANGE, HeaderValue::from_static("bytes=0-10"));
        assert_eq!(normalize(&mut ranged), Encoding::Identity);
        assert_eq!(ranged[ACCEPT_ENCODING], "identity");
    }

    #[test]
    fn only_compressible_identity_responses_of_a_fitting_size() {
        let head = |pairs: &[(&'static str, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, HeaderValue::from_static(value));
            }
            headers
        };
        let html = head(&[("content-type", "text/html; charset=utf-8")]);
        assert!(compressible(StatusCode::OK, &html, Some(5_000)));
        assert!(compressible(StatusCode::NOT_FOUND, &html, None));
        assert!(!compressible(
            StatusCode::PARTIAL_CONTENT,
            &html,
            Some(5_000)
        ));
        assert!(!compressible(StatusCode::OK, &html, Some(999)));
        assert!(!compressible(StatusCode::OK, &html, Some(MAX_BYTES + 1)));
        for kind in [
            "application/json",
            "application/ld+json",
            "image/svg+xml",
            "text/css",
        ] {
            let headers = head(&[("content-type", kind)]);
            assert!(
                compressible(StatusCode::OK, &headers, Some(5_000)),
                "{kind}"
            );
        }
        for kind in [
            "image/png",
            "video/mp4",
            "application/zip",
            "text/event-stream",
        ] {
            let headers = head(&[("content-type", kind)]);
            assert!(
                !compressible(StatusCode::OK, &headers, Some(5_000)),
                "{kind}"
            );
        }
        let gzipped = head(&[("content-type", "text/html"), ("content-encoding", "gzip")]);
        assert!(!compressible(StatusCode::OK, &gzipped, Some(5_000)));
        let kept = head(&[
            ("content-type", "text/html"),
            ("cache-control", "public, no-transform"),
        ]);
        assert!(!compressible(StatusCode::OK, &kept, Some(5_000)));
        let sized = head(&[("content-type", "text/html"), ("content-length", "500")]);
        assert!(!compressible(StatusCode::OK, &sized, None));
    }

    #[test]
    fn encoded_bodies_decode_to_the_original_streamed_or_whole() {
        let text: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("line {} of the page\n", i % 97).into_bytes())
            .collect();
        for encoding in Encoding::PREFERENCE {
            for flush_each in [false, true] {
                let mut encoder = Encoder::new(encoding, flush_each).expect("an encoder");
                let mut out = Vec::new();
                for chunk in text.chunks(7_000) {
                    let got = encoder.chunk(chunk).expect("encode");
                    if flush_each {
                        assert!(!got.is_empty(), "{encoding:?}: a flushed chunk comes out");
                    }
                    out.extend_from_slice(&got);
                }
                out.extend_from_slice(&encoder.finish().expect("finish"));
                assert!(out.len() < text.len() / 4, "{encoding:?}: {}", out.len());
                assert_eq!(decode(encoding, &out), text, "{encoding:?}");
            }
            let whole = Encoder::whole(encoding, &text).expect("encode");
            assert_eq!(decode(encoding, &whole), text);
        }
    }

    fn decode(encoding: Encoding, bytes: &[u8]) -> Vec<u8> {
        use std::io::Read as _;
        let mut out = Vec::new();
        match encoding {
            Encoding::Brotli => brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .map(|_| ()),
            Encoding::Zstd => zstd::stream::read::Decoder::new(bytes)
                .and_then(|mut d| d.read_to_end(&mut out))
                .map(|_| ()),
            Encoding::Gzip => flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .map(|_| ()),
            Encoding::Identity => {
                out.extend_from_slice(bytes);
                Ok(())
            }
        }
        .expect("decode");
        out
    }

    #[test]
    fn an_encoded_head_has_no_length_and_a_weak_etag() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("5000"));
        headers.insert(ETAG, HeaderValue::from_static("\"v1\""));
        encoded_head(&mut headers, Encoding::Gzip);
        assert_eq!(headers[CONTENT_ENCODING], "gzip");
        assert!(!headers.contains_key(CONTENT_LENGTH));
        assert_eq!(headers[ETAG], "W/\"v1\"");
        let mut weak = HeaderMap::new();
        weak.insert(ETAG, HeaderValue::from_static("W/\"v1\""));
        encoded_head(&mut weak, Encoding::Brotli);
        assert_eq!(weak[ETAG], "W/\"v1\"");
        let mut varied = HeaderMap::new();
        varied.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        add_vary(&mut varied);
        assert_eq!(varied.get_all(VARY).iter().count(), 1);
        let mut cookie = HeaderMap::new();
        cookie.insert(VARY, HeaderValue::from_static("cookie"));
        add_vary(&mut cookie);
        assert_eq!(cookie.get_all(VARY).iter().count(), 2);
    }
}
