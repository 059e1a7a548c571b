//! The viewer's request path normalized once, before behavior matching, the cache key, hooks and the origin.
//!
//! Origins resolve paths their own way (nginx decodes percent-escapes, merges
//! `//` and removes dot-segments before it looks for a file), so a path the
//! host matched as written can name another resource at the origin:
//! `/public/../private/x` matches `/public/*` here and is `/private/x`
//! there. The host therefore serves, keys and forwards the path in one
//! canonical form, and refuses what has no safe canonical form:
//!
//! - percent-escapes of unreserved characters (RFC 3986 2.3) are decoded, and
//!   the hex digits of the other escapes are upper-cased (RFC 3986 6.2.2);
//! - runs of `/` are merged into one (as nginx's `merge_slashes` does);
//! - `.` and `..` segments are removed (RFC 3986 5.2.4; `..` never climbs
//!   above the root);
//! - refused (400): `%2F` and `%5C` inside a segment, a backslash, `%00`, a
//!   malformed escape, a dot-segment spelt with escapes (`%2e%2e`, `.%2E`)
//!   and a dot-segment with parameters (`..;x`, which Tomcat resolves as
//!   `..`). No client has a reason to send one; each is a known way to make
//!   two servers disagree on what a path names.
//!
//! The query string is not part of the path and is left as it is.

use std::borrow::Cow;

/// A path the host refuses to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with '/'")]
    NotAbsolute,
    #[error("a '%' not followed by two hex digits")]
    MalformedEscape,
    #[error("an encoded '/' (%2F) inside a path segment")]
    EncodedSlash,
    #[error("a backslash (or %5C) in the path")]
    Backslash,
    #[error("an encoded NUL (%00) in the path")]
    EncodedNul,
    #[error("a dot-segment spelt with percent-escapes")]
    EncodedDotSegment,
    #[error("a dot-segment with parameters (\"..;\")")]
    DotSegmentParameters,
}

/// Whether `b` is an unreserved character (RFC 3986 2.3), which an escape
/// never needs to hide.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One segment with its unreserved escapes decoded and the others
/// upper-cased; whether an escape decoded to a `.`.
fn segment(raw: &[u8]) -> Result<(Vec<u8>, bool), PathError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut encoded_dot = false;
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    raw.get(i + 1).copied().and_then(hex),
                    raw.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::MalformedEscape);
                };
                let byte = hi << 4 | lo;
                match byte {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::Backslash),
                    0 => return Err(PathError::EncodedNul),
                    b if unreserved(b) => {
                        encoded_dot |= b == b'.';
                        out.push(b);
                    }
                    _ => {
                        out.push(b'%');
                        out.extend_from_slice(format!("{byte:02X}").as_bytes());
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok((out, encoded_dot))
}

/// The canonical form of `path` (see the module docs), borrowed when the
/// path already is in it.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };
    // The common case, without allocating: no escape, no backslash, no
    // empty segment and no segment starting with a dot.
    if !path.bytes().any(|b| matches!(b, b'%' | b'\\'))
        && !path.contains("//")
        && !path.contains("/.")
    {
        return Ok(Cow::Borrowed(path));
    }
    let count = rest.bytes().filter(|b| *b == b'/').count() + 1;
    let mut segments: Vec<Vec<u8>> = Vec::with_capacity(count);
    let mut trailing_slash = false;
    for (i, raw) in rest.as_bytes().split(|b| *b == b'/').enumerate() {
        let (decoded, encoded_dot) = segment(raw)?;
        let is_last = i + 1 == count;
        let dots = decoded.as_slice() == b"." || decoded.as_slice() == b"..";
        if dots && encoded_dot {
            return Err(PathError::EncodedDotSegment);
        }
        if let Some(at) = decoded.iter().position(|b| *b == b';')
            && matches!(&decoded[..at], b"." | b"..")
        {
            return Err(PathError::DotSegmentParameters);
        }
        match decoded.as_slice() {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            _ => {
                segments.push(decoded);
                trailing_slash = false;
                continue;
            }
        }
        // An empty, `.` or `..` last segment leaves the path ending in `/`.
        trailing_slash = is_last;
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        // Only ASCII was added or decoded: the bytes stay UTF-8.
        out.push_str(&String::from_utf8_lossy(s));
    }
    if trailing_slash || segments.is_empty() {
        out.push('/');
    }
    Ok(if out == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(out)
    })
}

/// An invalidation path in the form [`normalize`] gives stored objects'
/// paths, so `/a%7e`, `/a/./~` and `//a~` all name what `/a~` stored: an
/// exact path is normalized; a prefix (the path before a final `*`) has the
/// part up to its last `/` normalized and the partial segment after it only
/// its escapes (a trailing `.` there is a prefix of a name, not a
/// dot-segment). A path that cannot be normalized stays as it is (no object
/// was stored under a refused path).
pub fn normalize_invalidation(path: &str) -> Cow<'_, str> {
    let Some(prefix) = path.strip_suffix('*') else {
        return normalize(path).unwrap_or(Cow::Borrowed(path));
    };
    let Some(slash) = prefix.rfind('/') else {
        return Cow::Borrowed(path);
    };
    let (head, tail) = prefix.split_at(slash + 1);
    let (Ok(head), Ok((tail, _))) = (normalize(head), segment(tail.as_bytes())) else {
        return Cow::Borrowed(path);
    };
    let mut out = head.into_owned();
    out.push_str(&String::from_utf8_lossy(&tail));
    out.push('*');
    if out == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(path: &str) -> Result<String, PathError> {
        normalize(path).map(Cow::into_owned)
    }

    #[test]
    fn canonical_paths_are_borrowed_unchanged() {
        for path in [
            "/",
            "/a",
            "/a/b.txt",
            "/a/",
            "/a%20b",
            "/%C3%A9t%C3%A9",
            "/a;b=c",
        ] {
            assert!(
                matches!(normalize(path), Ok(Cow::Borrowed(p)) if p == path),
                "{path}"
            );
        }
    }

    #[test]
    fn dot_segments_are_removed() {
        let cases = [
            ("/public/../private/secret.txt", "/private/secret.txt"),
            ("/PRIVATE/../private/secret.txt", "/private/secret.txt"),
            ("/a/./b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/../../..", "/"),
            ("/..", "/"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/..b/c", "/a/..b/c"),
            ("/a/b..", "/a/b.."),
            ("/...", "/..."),
            ("/a/.hidden", "/a/.hidden"),
        ];
        for (path, want) in cases {
            assert_eq!(norm(path).as_deref(), Ok(want), "{path}");
        }
    }

    #[test]
    fn slashes_are_merged() {
        let cases = [
            ("//private/secret.txt", "/private/secret.txt"),
            ("/a//b///c", "/a/b/c"),
            ("/a//", "/a/"),
            ("//", "/"),
            ("/a//../b", "/b"),
        ];
        for (path, want) in cases {
            assert_eq!(norm(path).as_deref(), Ok(want), "{path}");
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_the_rest_upper_cased() {
        let cases = [
            ("/%70rivate/secret.txt", "/private/secret.txt"),
            ("/%7Euser/%41%2d%5f", "/~user/A-_"),
            ("/a%2eb", "/a.b"),
            ("/a%20b", "/a%20b"),
            ("/a%3fb", "/a%3Fb"),
            ("/%c3%a9", "/%C3%A9"),
            ("/%25", "/%25"),
            ("/%252e%252e/x", "/%252e%252e/x"),
        ];
        for (path, want) in cases {
            assert_eq!(norm(path).as_deref(), Ok(want), "{path}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        let cases = [
            (
                "/public/%2e%2e/private/secret.txt",
                PathError::EncodedDotSegment,
            ),
            ("/public/%2E%2E/private", PathError::EncodedDotSegment),
            ("/public/.%2e/private", PathError::EncodedDotSegment),
            ("/public/%2e/private", PathError::EncodedDotSegment),
            ("/public/..%2fprivate/secret.txt", PathError::EncodedSlash),
            ("/a%2Fb", PathError::EncodedSlash),
            ("/a%5cb", PathError::Backslash),
            ("/a\\..\\b", PathError::Backslash),
            ("/a%00.txt", PathError::EncodedNul),
            ("/a%zz", PathError::MalformedEscape),
            ("/a%2", PathError::MalformedEscape),
            ("/a%", PathError::MalformedEscape),
            ("/public/..;/private", PathError::DotSegmentParameters),
            ("/public/.;x/private", PathError::DotSegmentParameters),
            ("*", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
        ];
        for (path, want) in cases {
            assert_eq!(norm(path), Err(want), "{path}");
        }
    }

    #[test]
    fn invalidation_paths_name_what_normalized_requests_stored() {
        let cases = [
            ("/a%7e", "/a~"),
            ("//a/./b", "/a/b"),
            ("/img/*", "/img/*"),
            ("/*", "/*"),
            ("//img/../css/*", "/css/*"),
            ("/img/caf%c3*", "/img/caf%C3*"),
            ("/img/.*", "/img/.*"),
            ("/img/..*", "/img/..*"),
            ("/a%2Fb", "/a%2Fb"),
            ("/a%2F*", "/a%2F*"),
        ];
        for (path, want) in cases {
            assert_eq!(normalize_invalidation(path), want, "{path}");
        }
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for path in [
            "/public/../private/./x",
            "//a//b/",
            "/%7e/%c3%a9/..",
            "/a/b/../../c/",
        ] {
            let once = norm(path).unwrap();
            assert_eq!(norm(&once).unwrap(), once, "{path}");
        }
    }
}
