//! Seeded random inputs for the parsers hostile input reaches first: the
//! distribution config (JSON, then validation), `Cache-Control` and the
//! freshness arithmetic on what it says, the request-path normalizer, and a
//! hook's response. None may panic; each run is reproducible from its seed. (A
//! stable-Rust stand-in for coverage-guided fuzzing, which needs nightly.)

use edge::cache::freshness::CacheControl;
use edge::config::{Distribution, DistributionConfig, parse_json};
use edge::wasm::bindings::Header;
use edge::wasm::{Response, convert};
use http::{HeaderMap, HeaderValue};

/// A small, seeded pseudo-random sequence.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(self.0 >> 33).unwrap_or(0) % below.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.next(items.len())]
    }
}

const VALID: &str = r#"{"comment": "c", "aliases": ["www.example.com", "*.example.org"],
 "origins": [{"id": "a", "domain_name": "a.example:8080", "protocol": "http", "origin_path": "/v1",
              "custom_headers": {"x-k": "v"}, "read_timeout_ms": 100},
             {"id": "b", "domain_name": "b.example"}],
 "origin_groups": [{"id": "g", "members": ["a", "b"], "failover_status_codes": [502]}],
 "default_cache_behavior": {"target_origin_id": "g", "min_ttl": 1, "default_ttl": 5, "max_ttl": 9,
   "cache_key": {"query_strings": ["p"], "headers": ["accept-language"], "cookies": ["s"]}},
 "cache_behaviors": [{"path_pattern": "/img/*.png", "target_origin_id": "a"}],
 "logging": {"enabled": true}}"#;

#[test]
fn mutated_configs_never_panic_the_parser_or_the_validator() {
    let mut random = Lcg(0xC0FF_EE00);
    let pieces = [
        "",
        "\"",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "null",
        "-1",
        "1e309",
        "18446744073709551616",
        "\"*\"",
        "\"/\"",
        "\u{0}",
        "\\u0000",
        "\"a\"",
        "true",
        "\"\u{feff}\"",
        " ",
    ];
    let mut accepted = 0;
    for _ in 0..20_000 {
        let mut text = VALID.as_bytes().to_vec();
        for _ in 0..1 + random.next(4) {
            let at = random.next(text.len());
            match random.next(3) {
                0 => {
                    let end = (at + random.next(8)).min(text.len());
                    text.drain(at..end);
                }
                1 => text
                    .splice(at..at, random.pick(&pieces).bytes())
                    .for_each(drop),
                _ => text[at] = u8::try_from(random.next(256)).unwrap_or(0),
            }
        }
        if let Ok(raw) = parse_json::<DistributionConfig>(&text)
            && Distribution::try_from(raw).is_ok()
        {
            accepted += 1;
        }
    }
    // Some mutations leave a valid config (a changed comment, say).
    assert!(accepted > 0);
}

#[test]
fn random_cache_control_fields_never_panic() {
    let mut random = Lcg(0x0CAC_4E00);
    let tokens = [
        "max-age",
        "s-maxage",
        "no-cache",
        "no-store",
        "private",
        "public",
        "must-revalidate",
        "stale-while-revalidate",
        "stale-if-error",
        "must-understand",
        "=",
        "\"",
        ",",
        ";",
        " ",
        "0",
        "60",
        "-1",
        "99999999999999999999999",
        "edge",
        "\"a,b\"",
        "=\"",
        "no-cache=\"set-cookie\"",
    ];
    for _ in 0..50_000 {
        let mut value = String::new();
        for _ in 0..random.next(12) {
            value.push_str(random.pick(&tokens));
        }
        let Ok(value) = HeaderValue::from_str(&value) else {
            continue;
        };
        let mut headers = HeaderMap::new();
        headers.append(http::header::CACHE_CONTROL, value.clone());
        if random.next(2) == 0 {
            headers.append(http::header::CACHE_CONTROL, value);
        }
        let parsed = CacheControl::parse(&headers);
        std::hint::black_box(parsed);
    }
}

#[test]
fn random_hook_responses_are_checked_without_panicking() {
    let mut random = Lcg(0x0B0_0C0);
    let names = [
        "x-a",
        "",
        "via",
        "connection",
        "X-Up",
        "a b",
        "content-length",
        "\u{e9}",
        "x-a",
    ];
    let values: [&[u8]; 6] = [b"v", b"", b"a\r\nb", b"\0", &[0xff, 0xfe], b"  spaced  "];
    let mut accepted = 0;
    for _ in 0..20_000 {
        let status = u16::try_from(random.next(700)).unwrap_or(0);
        let headers = (0..random.next(5))
            .map(|_| Header {
                name: random.pick(&names).to_owned(),
                value: values[random.next(values.len())].to_vec(),
            })
            .collect();
        let body = (random.next(3) == 0).then(|| vec![b'x'; random.next(50_000)]);
        let response = Response {
            status,
            headers,
            body,
        };
        if convert::response_from_wit(response, &HeaderMap::new(), None, 40 * 1024).is_ok() {
            accepted += 1;
        }
    }
    assert!(accepted > 0);
}

#[test]
fn random_freshness_arithmetic_never_panics_at_any_time() {
    let mut random = Lcg(0x0F4E_5400);
    let numbers = [
        "0",
        "1",
        "60",
        "2147483648",
        "4294967296",
        "9223372036854775807",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999",
        "-1",
    ];
    let fields = [
        "cache-control: max-age=",
        "cache-control: s-maxage=",
        "cache-control: stale-while-revalidate=",
        "cache-control: stale-if-error=",
        "cdn-cache-control: max-age=",
        "cdn-cache-control: stale-if-error=",
        "surrogate-control: max-age=",
        "age: ",
    ];
    let fixed = [
        "date: Thu, 01 Jan 1970 00:00:00 GMT",
        "expires: Fri, 31 Dec 9999 23:59:59 GMT",
        "expires: 0",
        "etag: \"v\"",
        "cache-control: must-revalidate",
        "cache-control: no-cache",
    ];
    let times = [0, 1, 60, 1_700_000_000, 1 << 31, 1 << 62, u64::MAX];
    for _ in 0..20_000 {
        let mut data = Vec::new();
        for _ in 0..3 {
            let n = times[random.next(times.len())];
            data.extend_from_slice(&n.to_le_bytes());
        }
        for _ in 0..1 + random.next(5) {
            if random.next(3) == 0 {
                data.extend_from_slice(random.pick(&fixed).as_bytes());
            } else {
                data.extend_from_slice(random.pick(&fields).as_bytes());
                data.extend_from_slice(random.pick(&numbers).as_bytes());
            }
            data.push(b'\n');
        }
        edge::fuzzing::freshness(&data);
    }
}

#[test]
fn random_paths_normalize_to_a_canonical_form_or_are_refused() {
    let mut random = Lcg(0x9A7E_0000);
    let pieces = [
        "/", "//", ".", "..", "a", "B", "~", "%", "%2e", "%2E", "%2f", "%5c", "%00", "%7e", "%41",
        "%c3%a9", "%zz", ";", "..;", "\\", "?", "%25", "é", " ",
    ];
    for _ in 0..50_000 {
        let mut path = String::new();
        for _ in 0..random.next(10) {
            path.push_str(random.pick(&pieces));
        }
        edge::fuzzing::path(path.as_bytes());
    }
}
