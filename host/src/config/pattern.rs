//! Cache-behavior path patterns: `*` matches any run of characters, `?` exactly one.

/// A path pattern as CloudFront reads it: case-sensitive, `*` and `?` wildcards,
/// a leading `/` optional (`images/*` and `/images/*` are the same pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    pattern: Vec<u8>,
    source: String,
}

impl PathPattern {
    /// Parses a pattern; it may hold the characters a URL path may.
    pub fn parse(source: &str) -> Result<Self, String> {
        if source.is_empty() || source.len() > 255 {
            return Err("a path pattern is 1-255 characters".to_owned());
        }
        if source.bytes().any(|b| b <= b' ' || b == b'#' || b >= 0x7f) {
            return Err(format!("{source:?} holds characters a URL path cannot"));
        }
        let mut pattern = Vec::with_capacity(source.len() + 1);
        if !source.starts_with('/') && !source.starts_with('*') {
            pattern.push(b'/');
        }
        pattern.extend_from_slice(source.as_bytes());
        Ok(Self {
            pattern,
            source: source.to_owned(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `path` (no query string) matches. Linear-time glob matching with
    /// one backtrack point, so no pattern can make a request slow.
    pub fn matches(&self, path: &str) -> bool {
        let (p, s) = (&self.pattern, path.as_bytes());
        let (mut pi, mut si) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
                pi += 1;
                si += 1;
            } else if pi < p.len() && p[pi] == b'*' {
                star = Some((pi, si));
                pi += 1;
            } else if let Some((sp, ss)) = star {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

#[cfg(test)]
mod tests {
    use super::PathPattern;

    fn m(pattern: &str, path: &str) -> bool {
        PathPattern::parse(pattern).unwrap().matches(path)
    }

    #[test]
    fn star_and_question_mark() {
        assert!(m("/images/*", "/images/a/b.png"));
        assert!(m("/images/*", "/images/"));
        assert!(!m("/images/*", "/images"));
        assert!(m("*.jpg", "/a/b/c.jpg"));
        assert!(!m("*.jpg", "/a/b/c.jpeg"));
        assert!(m("/v?/x", "/v1/x"));
        assert!(!m("/v?/x", "/v10/x"));
        assert!(m("/a*b*c", "/axxbyyc"));
        assert!(!m("/a*b*c", "/axxbyy"));
        assert!(m("*", "/anything"));
    }

    #[test]
    fn leading_slash_is_optional_and_case_matters() {
        assert!(m("api/*", "/api/users"));
        assert!(!m("/API/*", "/api/users"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(PathPattern::parse("").is_err());
        assert!(PathPattern::parse("/a b").is_err());
    }
}
