//! Configs validated end to end: defaults, the rules, and the field each
//! refusal names.

use std::time::Duration;

use http::uri::Scheme;

use super::*;

fn parse(json: &str) -> Result<Distribution, String> {
    let raw: DistributionConfig = parse_json(json.as_bytes()).map_err(|e| e.to_string())?;
    Distribution::try_from(raw).map_err(|e| e.to_string())
}

const MINIMAL: &str = r#"{"origins":[{"id":"a","domain_name":"127.0.0.1:1"}],
    "default_cache_behavior":{"target_origin_id":"a"}}"#;

#[test]
fn minimal_config_gets_cloudfront_defaults() {
    let d = parse(MINIMAL).unwrap();
    assert!(d.enabled);
    assert_eq!(
        d.default_behavior.ttl,
        TtlPolicy::new(0, 86_400, 31_536_000)
    );
    assert_eq!(d.origins[0].scheme, Scheme::HTTPS);
    assert_eq!(d.origins[0].read_timeout, Duration::from_secs(30));
}

#[test]
fn unknown_field_is_named_with_its_path() {
    let err = parse(
        r#"{"origins":[{"id":"a","domain_name":"x","colour":1}],
            "default_cache_behavior":{"target_origin_id":"a"}}"#,
    )
    .unwrap_err();
    assert!(
        err.starts_with("origins[0].colour: unknown field `colour`"),
        "{err}"
    );
}

#[test]
fn malformed_json_is_told_apart_from_a_bad_shape() {
    let raw = parse_json::<DistributionConfig>(b"{\"origins\": [").unwrap_err();
    assert!(matches!(raw, ParseError::Malformed(_)));
    let shape = parse_json::<DistributionConfig>(b"{}").unwrap_err();
    assert!(matches!(shape, ParseError::Invalid(_)), "{shape}");
}

#[test]
fn rules_name_the_field() {
    let cases = [
        (
            r#"{"origins":[],"default_cache_behavior":{"target_origin_id":"a"}}"#,
            "origins:",
        ),
        (
            r#"{"origins":[{"id":"a","domain_name":"x"}],"default_cache_behavior":{"target_origin_id":"b"}}"#,
            "default_cache_behavior.target_origin_id: \"b\" names no origin or origin group; the ids are: a",
        ),
        (
            r#"{"origins":[{"id":"a","domain_name":"https://x.example/"}],"default_cache_behavior":{"target_origin_id":"a"}}"#,
            "\"domain_name\": \"x.example\", \"protocol\": \"https\"",
        ),
        (
            r#"{"origins":[{"id":"a","domain_name":"x"},{"id":"a","domain_name":"y"}],"default_cache_behavior":{"target_origin_id":"a"}}"#,
            "origins[1].id:",
        ),
        (
            r#"{"aliases":["Bad_Host"],"origins":[{"id":"a","domain_name":"x"}],"default_cache_behavior":{"target_origin_id":"a"}}"#,
            "aliases[0]:",
        ),
        (
            r#"{"origins":[{"id":"a","domain_name":"x"}],"default_cache_behavior":{"target_origin_id":"a","min_ttl":10,"max_ttl":5}}"#,
            "default_cache_behavior.min_ttl:",
        ),
        (
            r#"{"origins":[{"id":"a","domain_name":"x"}],"default_cache_behavior":{"target_origin_id":"a","default_ttl":10,"max_ttl":5}}"#,
            "default_cache_behavior.default_ttl:",
        ),
        (
            r#"{"origins":[{"id":"a","domain_name":"x"}],"default_cache_behavior":{"target_origin_id":"a"},"cache_behaviors":[{"target_origin_id":"a"}]}"#,
            "cache_behaviors[0].path_pattern:",
        ),
        (
            r#"{"origins":[{"id":"a","domain_name":"http://x/"}],"default_cache_behavior":{"target_origin_id":"a"}}"#,
            "origins[0].domain_name:",
        ),
        (
            r#"{"origins":[{"id":"a","domain_name":"x","custom_headers":{"connection":"close"}}],"default_cache_behavior":{"target_origin_id":"a"}}"#,
            "origins[0].custom_headers.connection:",
        ),
        (
            r#"{"origins":[{"id":"a","domain_name":"x"}],"origin_groups":[{"id":"g","members":["a","zz"]}],"default_cache_behavior":{"target_origin_id":"g"}}"#,
            "origin_groups[0].members[1]:",
        ),
    ];
    for (json, field) in cases {
        let err = parse(json).unwrap_err();
        assert!(err.contains(field), "expected {field} in {err}");
    }
}

#[test]
fn forwarding_headers_default_to_all_three_and_are_validated() {
    let with = |list: &str| {
        parse(&format!(
            r#"{{"origins":[{{"id":"a","domain_name":"x"}}],"default_cache_behavior":{{"target_origin_id":"a"{list}}}}}"#
        ))
        .map(|d| d.default_behavior.forwarding)
    };
    assert_eq!(with(""), Ok(Forwarding::ALL));
    assert_eq!(with(r#","forwarding_headers":[]"#), Ok(Forwarding::NONE));
    assert_eq!(
        with(r#","forwarding_headers":["X-Forwarded-Proto"]"#),
        Ok(Forwarding {
            x_forwarded_proto: true,
            ..Forwarding::NONE
        })
    );
    let unknown = with(r#","forwarding_headers":["forwarded","x-real-ip"]"#).unwrap_err();
    assert!(
        unknown.starts_with("default_cache_behavior.forwarding_headers[1]:"),
        "{unknown}"
    );
    let twice = with(r#","forwarding_headers":["forwarded","Forwarded"]"#).unwrap_err();
    assert!(twice.contains("listed twice"), "{twice}");
}

#[test]
fn serve_stale_on_error_is_on_unless_a_behavior_turns_it_off() {
    let raw = |extra: &str| {
        parse_json::<DistributionConfig>(
            format!(
                r#"{{"origins":[{{"id":"a","domain_name":"x"}}],"default_cache_behavior":{{"target_origin_id":"a"}},
                "cache_behaviors":[{{"path_pattern":"/live/*","target_origin_id":"a"{extra}}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    };
    let on = Distribution::try_from(raw("")).unwrap();
    assert!(on.default_behavior.serve_stale_on_error);
    assert!(on.behavior_for("/live/feed").1.serve_stale_on_error);
    let off = raw(r#","serve_stale_on_error":false"#);
    let d = Distribution::try_from(off.clone()).unwrap();
    assert!(d.default_behavior.serve_stale_on_error);
    assert!(!d.behavior_for("/live/feed").1.serve_stale_on_error);
    // Only a behavior that turns it off says so when the config is written.
    let written = serde_json::to_string(&off).unwrap();
    assert_eq!(
        written.matches("serve_stale_on_error").count(),
        1,
        "{written}"
    );
    assert!(
        written.contains(r#""serve_stale_on_error":false"#),
        "{written}"
    );
    assert!(
        !serde_json::to_string(&raw(""))
            .unwrap()
            .contains("serve_stale_on_error")
    );
    let wrong = parse_json::<DistributionConfig>(
        br#"{"origins":[{"id":"a","domain_name":"x"}],"default_cache_behavior":{"target_origin_id":"a","serve_stale_on_error":"no"}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        wrong.starts_with("default_cache_behavior.serve_stale_on_error:"),
        "{wrong}"
    );
}

#[test]
fn origin_request_forwards_the_union_and_names_the_field_it_refuses() {
    let with = |extra: &str| {
        parse(&format!(
            r#"{{"origins":[{{"id":"a","domain_name":"x"}}],"default_cache_behavior":{{"target_origin_id":"a"{extra}}}}}"#
        ))
        .map(|d| d.default_behavior)
    };
    let b = with(
        r#","cache_key":{"query_strings":["v"],"cookies":["s"]},"origin_request":{"query_strings":["w","v"],"cookies":["t","s"],"headers":"all"}"#,
    )
    .unwrap();
    assert_eq!(
        b.forward,
        ForwardPolicy {
            query_strings: raw::QueryStrings::Only(vec!["v".into(), "w".into()]),
            cookies: raw::Names::Only(vec!["s".into(), "t".into()]),
        }
    );
    // The key stays the cache key's.
    assert_eq!(b.cache_key.cookies, ["s"]);
    let all = with(r#","origin_request":{"query_strings":"all","cookies":"all","headers":"none"}"#)
        .unwrap();
    assert_eq!(all.forward.query_strings, raw::QueryStrings::All);
    assert_eq!(all.forward.cookies, raw::Names::All);
    assert!(matches!(
        all.cache_key.query_strings,
        raw::QueryStrings::None
    ));
    assert_eq!(with("").unwrap().forward, ForwardPolicy::default());
    // A dropped header may be listed once the key names it.
    with(r#","cache_key":{"headers":["X-Forwarded-Host"]},"origin_request":{"headers":["x-forwarded-host"]}"#)
        .unwrap();
    for (extra, field) in [
        (
            r#","origin_request":{"headers":["X-Forwarded-Host"]}"#,
            "default_cache_behavior.origin_request.headers[0]: \"X-Forwarded-Host\": a URL- or method-override",
        ),
        (
            r#","origin_request":{"headers":["ok","X-Real-IP"]}"#,
            "default_cache_behavior.origin_request.headers[1]: \"X-Real-IP\": the viewer's forwarding fields",
        ),
        (
            r#","origin_request":{"headers":["x-forwarded-for"]}"#,
            "default_cache_behavior.origin_request.headers[0]:",
        ),
        (
            r#","origin_request":{"headers":["Host"]}"#,
            "default_cache_behavior.origin_request.headers[0]: \"Host\": the origin gets",
        ),
        (
            r#","origin_request":{"headers":["connection"]}"#,
            "default_cache_behavior.origin_request.headers[0]:",
        ),
        (
            r#","origin_request":{"headers":["cookie"]}"#,
            "default_cache_behavior.origin_request.headers[0]:",
        ),
        (
            r#","origin_request":{"headers":["bad header"]}"#,
            "default_cache_behavior.origin_request.headers[0]:",
        ),
        (
            r#","origin_request":{"cookies":["a=b"]}"#,
            "default_cache_behavior.origin_request.cookies[0]:",
        ),
        (
            r#","origin_request":{"query_strings":[""]}"#,
            "default_cache_behavior.origin_request.query_strings[0]:",
        ),
        (
            r#","origin_request":{"cookies":"some"}"#,
            "default_cache_behavior.origin_request.cookies:",
        ),
        (
            r#","origin_request":{"colour":1}"#,
            "default_cache_behavior.origin_request.colour:",
        ),
    ] {
        let err = with(extra).unwrap_err();
        assert!(err.starts_with(field), "{extra}: {err}");
    }
}

#[test]
fn statuses_other_than_success_default_to_ten_seconds() {
    let d = parse(MINIMAL).unwrap();
    let ttl = d.default_behavior.ttl;
    for code in STATUS_TTL_CODES {
        assert_eq!(ttl.heuristic(code), DEFAULT_STATUS_TTL, "{code}");
    }
    assert_eq!(ttl.heuristic(200), 86_400);
    let with = |extra: &str| {
        parse(&format!(
            r#"{{"origins":[{{"id":"a","domain_name":"x"}}],"default_cache_behavior":{{"target_origin_id":"a"{extra}}}}}"#
        ))
        .map(|d| d.default_behavior.ttl)
    };
    let set = with(r#","default_ttl_by_status":{"404":60,"301":0}"#).unwrap();
    assert_eq!((set.heuristic(404), set.heuristic(301)), (60, 0));
    assert_eq!(set.heuristic(410), DEFAULT_STATUS_TTL);
    // The default is brought within min_ttl and default_ttl; a value
    // given must be within min_ttl and max_ttl.
    assert_eq!(with(r#","min_ttl":30"#).unwrap().heuristic(404), 30);
    assert_eq!(with(r#","default_ttl":0"#).unwrap().heuristic(404), 0);
    assert_eq!(with(r#","default_ttl":5"#).unwrap().heuristic(301), 5);
    for (extra, field) in [
        (
            r#","default_ttl_by_status":{"200":5}"#,
            "default_cache_behavior.default_ttl_by_status.200:",
        ),
        (
            r#","default_ttl_by_status":{"500":5}"#,
            "default_cache_behavior.default_ttl_by_status.500:",
        ),
        (
            r#","default_ttl_by_status":{"x":5}"#,
            "default_cache_behavior.default_ttl_by_status.x:",
        ),
        (
            r#","max_ttl":60,"default_ttl_by_status":{"404":61}"#,
            "default_cache_behavior.default_ttl_by_status.404:",
        ),
    ] {
        let err = with(extra).unwrap_err();
        assert!(err.starts_with(field), "{extra}: {err}");
    }
}

#[test]
fn default_ttl_follows_a_lower_max_ttl_when_not_given() {
    let d = parse(
        r#"{"origins":[{"id":"a","domain_name":"x"}],"default_cache_behavior":{"target_origin_id":"a","max_ttl":60}}"#,
    )
    .unwrap();
    assert_eq!(d.default_behavior.ttl, TtlPolicy::new(0, 60, 60));
}

#[test]
fn behaviors_match_in_order_then_default() {
    let d = parse(
        r#"{"origins":[{"id":"a","domain_name":"x"},{"id":"b","domain_name":"y"},{"id":"c","domain_name":"z"}],
            "default_cache_behavior":{"target_origin_id":"a"},
            "cache_behaviors":[{"path_pattern":"/api/*","target_origin_id":"b"},
                               {"path_pattern":"/api/v?/x","target_origin_id":"c"}]}"#,
    )
    .unwrap();
    assert_eq!(d.behavior_for("/api/v1/x").1.target_origin_id, "b");
    assert_eq!(d.behavior_for("/api/v1/x").0, 1);
    assert_eq!(d.behavior_for("/img/a.png").1.target_origin_id, "a");
    assert_eq!(d.behavior_for("/img/a.png").0, 0);
}

#[test]
fn config_round_trips_through_json() {
    let raw: DistributionConfig = parse_json(
        br#"{"origins":[{"id":"a","domain_name":"x","protocol":"http"}],
             "default_cache_behavior":{"target_origin_id":"a","cache_key":{"query_strings":["v"]},
                "origin_request":{"query_strings":"all","cookies":"all","headers":["x-api"]}}}"#,
    )
    .unwrap();
    let again: DistributionConfig = parse_json(&serde_json::to_vec(&raw).unwrap()).unwrap();
    assert_eq!(raw, again);
}
