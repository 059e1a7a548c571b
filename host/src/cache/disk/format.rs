//! One stored object as a file: a fixed head, the object's description
//! (its key, status, fields, freshness, tags, what it varies on), then its
//! body; the description and the body each carry a CRC-32, and the head says
//! how long each is, so a damaged or truncated file is told apart from a
//! whole one.
//!
//! ```text
//! magic "EDGEOBJ1" | seq u64 | meta_len u32 | meta_crc u32 | body_len u64 | body_crc u32
//!   | head_crc u32 (of the 36 bytes before it)
//! meta (meta_len bytes) | body (body_len bytes)
//! ```
//!
//! Integers are little-endian; the meta is a sequence of length-prefixed
//! fields (`Writer` / `Reader` below), read with every bound checked.

use std::time::Duration;

use crate::cache::freshness::Freshness;

const MAGIC: &[u8; 8] = b"EDGEOBJ1";
/// The fixed head's length.
pub const HEAD: usize = 8 + 8 + 4 + 4 + 8 + 4 + 4;
/// The longest description read (fields included).
const MAX_META: u32 = 1 << 20;

/// What a file says of its object besides the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub key: String,
    pub status: u16,
    /// Field names and values, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// When it was stored (Unix nanoseconds).
    pub stored_unix_nanos: u64,
    pub freshness: Freshness,
    pub distribution_id: String,
    pub primary_id: String,
    pub path: String,
    pub base: String,
    pub cache_tags: Vec<String>,
    /// The request fields its resource varies on, and the epoch of its
    /// variant key; `None` for a resource that does not vary.
    pub vary: Option<(Vec<String>, u64)>,
}

/// What the fixed head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The write that made the file (a number the tier hands out in order).
    pub seq: u64,
    pub meta_len: u32,
    pub meta_crc: u32,
    pub body_len: u64,
    pub body_crc: u32,
}

impl Head {
    /// Where the body starts.
    pub fn body_offset(&self) -> u64 {
        HEAD as u64 + u64::from(self.meta_len)
    }

    /// How long the whole file is.
    pub fn file_len(&self) -> u64 {
        self.body_offset() + self.body_len
    }
}

/// Why a file is not a whole object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not an object file (magic)")]
    Magic,
    #[error("truncated")]
    Truncated,
    #[error("its head does not match its CRC")]
    HeadCrc,
    #[error("its description does not match its CRC")]
    MetaCrc,
    #[error("its body does not match its CRC")]
    BodyCrc,
    #[error("its description is malformed: {0}")]
    Malformed(&'static str),
}

/// The head and description of an object, ready to write before its body.
pub fn encode(seq: u64, meta: &Meta, body: &[u8]) -> Vec<u8> {
    let mut m = Writer(Vec::with_capacity(256 + meta.key.len()));
    m.bytes(meta.key.as_bytes());
    m.u16(meta.status);
    m.u32(u32::try_from(meta.headers.len()).unwrap_or(u32::MAX));
    for (name, value) in &meta.headers {
        m.bytes(name.as_bytes());
        m.bytes(value);
    }
    m.u64(meta.stored_unix_nanos);
    let f = &meta.freshness;
    for d in [
        f.ttl,
        f.initial_age,
        f.stale_while_revalidate,
        f.stale_if_error,
    ] {
        m.u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }
    m.u8(u8::from(f.must_revalidate) | (u8::from(f.keep_stale) << 1));
    for text in [
        &meta.distribution_id,
        &meta.primary_id,
        &meta.path,
        &meta.base,
    ] {
        m.bytes(text.as_bytes());
    }
    m.u32(u32::try_from(meta.cache_tags.len()).unwrap_or(u32::MAX));
    for tag in &meta.cache_tags {
        m.bytes(tag.as_bytes());
    }
    match &meta.vary {
        None => m.u8(0),
        Some((names, epoch)) => {
            m.u8(1);
            m.u64(*epoch);
            m.u32(u32::try_from(names.len()).unwrap_or(u32::MAX));
            for name in names {
                m.bytes(name.as_bytes());
            }
        }
    }
    let meta_bytes = m.0;
    let mut out = Vec::with_capacity(HEAD + meta_bytes.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(
        &u32::try_from(meta_bytes.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&crc32fast::hash(&meta_bytes).to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    let head_crc = crc32fast::hash(&out);
    out.extend_from_slice(&head_crc.to_le_bytes());
    out.extend_from_slice(&meta_bytes);
    out
}

/// Reads the fixed head.
pub fn decode_head(bytes: &[u8]) -> Result<Head, FormatError> {
    if bytes.len() < HEAD {
        return Err(FormatError::Truncated);
    }
    let (fixed, crc) = bytes[..HEAD].split_at(HEAD - 4);
    let mut r = Reader(bytes);
    if r.take(8)? != MAGIC {
        return Err(FormatError::Magic);
    }
    if crc32fast::hash(fixed).to_le_bytes() != crc {
        return Err(FormatError::HeadCrc);
    }
    let head = Head {
        seq: r.u64()?,
        meta_len: r.u32()?,
        meta_crc: r.u32()?,
        body_len: r.u64()?,
        body_crc: r.u32()?,
    };
    if head.meta_len > MAX_META {
        return Err(FormatError::Malformed("description too long"));
    }
    Ok(head)
}

/// Reads the description (`bytes` is exactly `head.meta_len` long).
pub fn decode_meta(head: &Head, bytes: &[u8]) -> Result<Meta, FormatError> {
    if bytes.len() != head.meta_len as usize {
        return Err(FormatError::Truncated);
    }
    if crc32fast::hash(bytes) != head.meta_crc {
        return Err(FormatError::MetaCrc);
    }
    let mut r = Reader(bytes);
    let key = r.text()?;
    let status = r.u16()?;
    let count = r.u32()?;
    let mut headers = Vec::new();
    for _ in 0..count {
        let name = r.text()?;
        let value = r.bytes()?.to_vec();
        headers.push((name, value));
    }
    let stored_unix_nanos = r.u64()?;
    let mut durations = [Duration::ZERO; 4];
    for d in &mut durations {
        *d = Duration::from_nanos(r.u64()?);
    }
    let flags = r.u8()?;
    let freshness = Freshness {
        ttl: durations[0],
        initial_age: durations[1],
        stale_while_revalidate: durations[2],
        stale_if_error: durations[3],
        must_revalidate: flags & 1 != 0,
        keep_stale: flags & 2 != 0,
    };
    let distribution_id = r.text()?;
    let primary_id = r.text()?;
    let path = r.text()?;
    let base = r.text()?;
    let count = r.u32()?;
    let mut cache_tags = Vec::new();
    for _ in 0..count {
        cache_tags.push(r.text()?);
    }
    let vary = match r.u8()? {
        0 => None,
        1 => {
            let epoch = r.u64()?;
            let count = r.u32()?;
            let mut names = Vec::new();
            for _ in 0..count {
                names.push(r.text()?);
            }
            Some((names, epoch))
        }
        _ => return Err(FormatError::Malformed("vary marker")),
    };
    if !r.0.is_empty() {
        return Err(FormatError::Malformed("bytes after the description"));
    }
    Ok(Meta {
        key,
        status,
        headers,
        stored_unix_nanos,
        freshness,
        distribution_id,
        primary_id,
        path,
        base,
        cache_tags,
        vary,
    })
}

/// Checks a body against its head.
pub fn check_body(head: &Head, body: &[u8]) -> Result<(), FormatError> {
    if body.len() as u64 != head.body_len {
        return Err(FormatError::Truncated);
    }
    if crc32fast::hash(body) != head.body_crc {
        return Err(FormatError::BodyCrc);
    }
    Ok(())
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(v);
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if self.0.len() < n {
            return Err(FormatError::Truncated);
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], FormatError> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    fn text(&mut self) -> Result<String, FormatError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| FormatError::Malformed("not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            key: "d1|GET|example.com|/a".to_owned(),
            status: 200,
            headers: vec![
                ("cache-control".to_owned(), b"max-age=60".to_vec()),
                ("x-bytes".to_owned(), vec![0xff, 0x00, b'a']),
            ],
            stored_unix_nanos: 1_700_000_000_123_456_789,
            freshness: Freshness {
                ttl: Duration::from_secs(60),
                initial_age: Duration::from_millis(1500),
                stale_while_revalidate: Duration::from_secs(5),
                stale_if_error: Duration::ZERO,
                must_revalidate: true,
                keep_stale: false,
            },
            distribution_id: "E1".to_owned(),
            primary_id: "E0".to_owned(),
            path: "/a".to_owned(),
            base: "d1|GET|example.com|/a".to_owned(),
            cache_tags: vec!["product-1".to_owned(), "site".to_owned()],
            vary: Some((vec!["accept-language".to_owned()], 7)),
        }
    }

    fn file(meta: &Meta, body: &[u8]) -> Vec<u8> {
        let mut bytes = encode(42, meta, body);
        bytes.extend_from_slice(body);
        bytes
    }

    /// Reads a whole file as the tier does.
    fn read(bytes: &[u8]) -> Result<(Head, Meta, Vec<u8>), FormatError> {
        let head = decode_head(bytes.get(..HEAD).ok_or(FormatError::Truncated)?)?;
        if bytes.len() as u64 != head.file_len() {
            return Err(FormatError::Truncated);
        }
        let start = HEAD;
        let end = head.body_offset() as usize;
        let meta = decode_meta(&head, &bytes[start..end])?;
        let body = &bytes[end..];
        check_body(&head, body)?;
        Ok((head, meta, body.to_vec()))
    }

    #[test]
    fn an_object_reads_back_as_written() {
        let m = meta();
        let bytes = file(&m, b"hello body");
        let (head, back, body) = read(&bytes).expect("a whole file");
        assert_eq!(head.seq, 42);
        assert_eq!(back, m);
        assert_eq!(body, b"hello body");
        let plain = Meta {
            vary: None,
            cache_tags: Vec::new(),
            ..m
        };
        assert_eq!(read(&file(&plain, b"")).expect("whole").1, plain);
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_refused() {
        let bytes = file(&meta(), b"hello body");
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x01;
            assert!(
                read(&damaged).is_err(),
                "byte {i} flipped was read as whole"
            );
        }
        for len in 0..bytes.len() {
            assert!(
                read(&bytes[..len]).is_err(),
                "a cut at {len} was read as whole"
            );
        }
    }
}
