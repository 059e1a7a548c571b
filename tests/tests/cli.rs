//! The `edge` CLI's verbs against a running host: what an operator types, what
//! they see, and the exit codes scripts rely on.

use std::time::Duration;

use edge_e2e::examples::{BLUEGREEN, EDGE_AUTH, HTML_REWRITE, MISBEHAVE, REQUEST_STATE};
use edge_e2e::{Edge, Origin, Reply, TOKEN, Value, config_for, json};

/// One CLI run: exit code, stdout, stderr.
struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Run {
    fn ok(self) -> String {
        assert_eq!(self.code, 0, "stderr: {}\nstdout: {}", self.err, self.out);
        self.out
    }

    fn json(self) -> Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }
}

async fn edge_cli(edge: &Edge, args: &[&str]) -> Run {
    let endpoint = format!("http://{}", edge.control);
    let mut argv = vec!["edge"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--endpoint", &endpoint, "--token", TOKEN]);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = edge::cli::run_args(argv, &mut out, &mut err).await;
    Run {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

fn write_json(dir: &tempfile::TempDir, name: &str, value: &Value) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, serde_json::to_vec(value).expect("json")).expect("write the file");
    path.to_string_lossy().into_owned()
}

fn site(alias: &[&str], origin: &Origin) -> Value {
    json!({
        "aliases": alias,
        "origins": [{"id": "web", "domain_name": origin.domain(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "web"},
    })
}

#[tokio::test]
async fn distributions_from_create_to_delete() {
    let (blue, green) = (
        Origin::start(|_| Reply::ok("blue").header("cache-control", "max-age=60")).await,
        Origin::start(|_| Reply::ok("green").header("cache-control", "max-age=60")).await,
    );
    let edge = Edge::start().await;
    let files = tempfile::tempdir().unwrap();
    let blue_cfg = write_json(&files, "blue.json", &site(&["www.cli.test"], &blue));

    let created = edge_cli(
        &edge,
        &["dist", "create", "--config", &blue_cfg, "--output", "json"],
    )
    .await
    .json();
    let id = created["id"].as_str().unwrap().to_owned();
    let etag = created["etag"].as_str().unwrap().to_owned();
    assert_eq!(edge.get("www.cli.test", "/").await.text(), "blue");

    let table = edge_cli(&edge, &["dist", "get", &id]).await.ok();
    assert!(table.contains(&format!("id           {id}")), "{table}");
    assert!(table.contains("aliases      www.cli.test"), "{table}");
    let listed = edge_cli(&edge, &["dist", "list"]).await.ok();
    assert!(listed.starts_with("ID "), "{listed}");
    assert!(
        listed.contains(&id) && listed.contains("Deployed"),
        "{listed}"
    );

    // get-config prints the config as JSON, ready for update --config.
    let got = edge_cli(&edge, &["dist", "get-config", &id, "--output", "json"])
        .await
        .json();
    assert_eq!(got["etag"], etag.as_str());
    assert_eq!(got["config"]["aliases"], json!(["www.cli.test"]));

    // A stale ETag is refused with the API's code, exit 1, nothing changed.
    let green_cfg = write_json(&files, "green.json", &site(&["www.cli.test"], &green));
    let stale = edge_cli(
        &edge,
        &[
            "dist",
            "update",
            &id,
            "--if-match",
            "E999",
            "--config",
            &green_cfg,
        ],
    )
    .await;
    assert_eq!(stale.code, 1);
    assert!(stale.err.contains("PreconditionFailed"), "{}", stale.err);
    assert_eq!(edge.get("www.cli.test", "/").await.text(), "blue");
    // No ETag from --if-match, --from-current or the file: refused, saying
    // where to get one.
    let usage = edge_cli(&edge, &["dist", "update", &id, "--config", &green_cfg]).await;
    assert_eq!(usage.code, 1, "{}", usage.err);
    assert!(usage.err.contains("--if-match"), "{}", usage.err);
    assert!(usage.err.contains("get-config"), "{}", usage.err);
    let updated = edge_cli(
        &edge,
        &[
            "dist",
            "update",
            &id,
            "--if-match",
            &etag,
            "--config",
            &green_cfg,
            "--output",
            "json",
        ],
    )
    .await
    .json();
    assert_ne!(updated["etag"], etag.as_str());
    assert_eq!(edge.get("www.cli.test", "/x").await.text(), "green");
    let again = edge_cli(
        &edge,
        &[
            "dist",
            "update",
            &id,
            "--from-current",
            "--config",
            &blue_cfg,
        ],
    )
    .await
    .ok();
    assert!(again.contains("status"), "{again}");
    assert_eq!(edge.get("www.cli.test", "/y").await.text(), "blue");

    // wait-deployed off a terminal prints plain lines.
    let waited = edge_cli(&edge, &["dist", "wait-deployed", &id]).await.ok();
    assert!(waited.contains(&format!("{id} Deployed")), "{waited}");

    // Delete needs a disabled distribution; the API's refusal is printed.
    let refused = edge_cli(&edge, &["dist", "delete", &id]).await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.err.contains("DistributionNotDisabled"),
        "{}",
        refused.err
    );
    let mut disabled = site(&["www.cli.test"], &blue);
    disabled["enabled"] = json!(false);
    let off = write_json(&files, "off.json", &disabled);
    edge_cli(
        &edge,
        &["dist", "update", &id, "--from-current", "--config", &off],
    )
    .await
    .ok();
    let deleted = edge_cli(&edge, &["dist", "delete", &id]).await.ok();
    assert_eq!(deleted.trim(), format!("deleted {id}"));
    let missing = edge_cli(&edge, &["dist", "get", &id]).await;
    assert_eq!(missing.code, 1);
    assert!(
        missing.err.contains("NoSuchDistribution"),
        "{}",
        missing.err
    );
}

#[tokio::test]
async fn blue_green_and_canary_from_the_command_line() {
    let (blue, green) = (
        Origin::start(|_| Reply::ok("blue").header("cache-control", "max-age=60")).await,
        Origin::start(|_| Reply::ok("green").header("cache-control", "max-age=60")).await,
    );
    let edge = Edge::start().await;
    let files = tempfile::tempdir().unwrap();
    let b = edge.create(site(&["www.bg.test"], &blue)).await;
    let g = edge.create(site(&[], &green)).await;
    let (bid, gid) = (b["id"].as_str().unwrap(), g["id"].as_str().unwrap());

    // The alias moves in one step.
    let moved = edge_cli(&edge, &["alias", "move", "www.bg.test", "--to", gid])
        .await
        .ok();
    assert!(moved.contains("www.bg.test"), "{moved}");
    assert_eq!(edge.get("www.bg.test", "/").await.text(), "green");
    edge_cli(&edge, &["alias", "move", "www.bg.test", "--to", bid])
        .await
        .ok();
    assert_eq!(edge.get("www.bg.test", "/").await.text(), "blue");

    // A canary: a staging copy pointed at green, 100 % of viewers by policy.
    let staging = edge_cli(&edge, &["cd", "create-staging", bid, "--output", "json"])
        .await
        .json();
    let sid = staging["id"].as_str().unwrap().to_owned();
    assert_eq!(staging["staging"], true);
    let green_cfg = write_json(&files, "green.json", &site(&[], &green));
    edge_cli(
        &edge,
        &[
            "dist",
            "update",
            &sid,
            "--from-current",
            "--config",
            &green_cfg,
        ],
    )
    .await
    .ok();
    let policy = edge_cli(
        &edge,
        &[
            "cd",
            "policy",
            "create",
            "--staging",
            &sid,
            "--weight",
            "100%",
            "--attach",
            bid,
            "--output",
            "json",
        ],
    )
    .await
    .json();
    let pid = policy["id"].as_str().unwrap().to_owned();
    assert_eq!(policy["config"]["traffic"]["weight"], 1.0);
    assert_eq!(edge.get("www.bg.test", "/c").await.text(), "green");
    let shown = edge_cli(&edge, &["cd", "policy", "get", &pid]).await.ok();
    assert!(shown.contains("weight 100%"), "{shown}");
    assert!(shown.contains("gate     Active"), "{shown}");
    // Back to 0 % by flags (the ETag fetched), then a header policy.
    edge_cli(
        &edge,
        &[
            "cd",
            "policy",
            "update",
            &pid,
            "--staging",
            &sid,
            "--weight",
            "0",
        ],
    )
    .await
    .ok();
    assert_eq!(edge.get("www.bg.test", "/d").await.text(), "blue");
    edge_cli(
        &edge,
        &[
            "cd",
            "policy",
            "update",
            &pid,
            "--staging",
            &sid,
            "--header",
            "x-canary",
            "--value",
            "1",
        ],
    )
    .await
    .ok();
    let listed = edge_cli(&edge, &["cd", "policy", "list"]).await.ok();
    assert!(listed.contains("header x-canary: 1"), "{listed}");
    let canary = edge
        .request("GET", "www.bg.test", "/e", &[("x-canary", "1")])
        .await;
    assert_eq!(canary.text(), "green");
    let bad = edge_cli(
        &edge,
        &[
            "cd",
            "policy",
            "update",
            &pid,
            "--staging",
            &sid,
            "--weight",
            "lots",
        ],
    )
    .await;
    assert_eq!(bad.code, 1);
    assert!(bad.err.contains("--weight"), "{}", bad.err);

    // Promote fetches both ETags itself.
    let promoted = edge_cli(&edge, &["cd", "promote", bid, "--staging", &sid])
        .await
        .ok();
    assert!(
        promoted.contains(&format!("origins      web={}", green.domain())),
        "{promoted}"
    );
    assert_eq!(edge.get("www.bg.test", "/f").await.text(), "green");

    // Invalidate and see the history.
    assert_eq!(edge.get("www.bg.test", "/f").await.cache(), "Hit");
    let inv = edge_cli(&edge, &["invalidate", bid, "/f", "/img/*"])
        .await
        .ok();
    assert!(inv.contains("Completed"), "{inv}");
    assert_eq!(edge.get("www.bg.test", "/f").await.cache(), "Miss");
    let history = edge_cli(&edge, &["invalidations", bid]).await.ok();
    assert!(history.contains("/f,/img/*"), "{history}");
}

#[tokio::test]
async fn hooks_and_kv_from_the_command_line() {
    let edge = Edge::start().await;
    let up = edge_cli(&edge, &["hook", "upload", "bluegreen", BLUEGREEN])
        .await
        .ok();
    assert!(up.starts_with("bluegreen sha256:"), "{up}");
    let listed = edge_cli(&edge, &["hook", "list"]).await.ok();
    assert!(listed.contains("bluegreen"), "{listed}");
    let versions = edge_cli(&edge, &["hook", "list", "bluegreen"]).await.ok();
    assert!(versions.contains("*"), "{versions}");
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), b"not wasm").unwrap();
    let refused = edge_cli(
        &edge,
        &["hook", "upload", "junk", &junk.path().to_string_lossy()],
    )
    .await;
    assert_eq!(refused.code, 1);
    assert!(refused.err.contains("InvalidHook"), "{}", refused.err);

    edge_cli(&edge, &["kv", "put", "bluegreen", "green_weight", "25"])
        .await
        .ok();
    assert_eq!(
        edge_cli(&edge, &["kv", "get", "bluegreen", "green_weight"])
            .await
            .ok(),
        "25\n"
    );
    edge_cli(&edge, &["kv", "delete", "bluegreen", "green_weight"])
        .await
        .ok();
    let gone = edge_cli(&edge, &["kv", "get", "bluegreen", "green_weight"]).await;
    assert_eq!(gone.code, 1);
    assert!(gone.err.contains("NoSuchKey"), "{}", gone.err);

    // A hook a distribution runs cannot be deleted; once no config names
    // it, it goes, and so does every version.
    let origin = Origin::start(|_| Reply::ok("blue")).await;
    let mut site = config_for(&[("blue", &origin), ("green", &origin)]);
    site["aliases"] = json!(["hooked.cli.test"]);
    site["default_cache_behavior"]["hooks"] = json!({"viewer_request": {"module": "bluegreen"}});
    let created = edge.create(site.clone()).await;
    let id = created["id"].as_str().unwrap();
    let in_use = edge_cli(&edge, &["hook", "delete", "bluegreen"]).await;
    assert_eq!(in_use.code, 1);
    assert!(
        in_use.err.contains("HookInUse") && in_use.err.contains(id),
        "{}",
        in_use.err
    );
    assert_eq!(edge.get("hooked.cli.test", "/").await.status, 200);
    site["default_cache_behavior"]
        .as_object_mut()
        .unwrap()
        .remove("hooks");
    let path = format!("/v1/distributions/{id}/config");
    let etag = created["etag"].as_str().unwrap();
    let put = edge
        .api("PUT", &path, Some(site), &[("if-match", etag)])
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    edge_cli(&edge, &["hook", "delete", "bluegreen"]).await.ok();
    let listed = edge_cli(&edge, &["hook", "list", "-o", "json"]).await.ok();
    assert!(!listed.contains("bluegreen"), "{listed}");
    let missing = edge_cli(&edge, &["hook", "delete", "bluegreen"]).await;
    assert!(missing.err.contains("NoSuchHook"), "{}", missing.err);
}

#[tokio::test]
async fn unreachable_api_and_bad_token_are_clear_errors() {
    let edge = Edge::start().await;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = edge::cli::run_args(
        [
            "edge",
            "dist",
            "list",
            "--endpoint",
            &format!("http://{}", edge.control),
            "--token",
            "wrong",
        ],
        &mut out,
        &mut err,
    )
    .await;
    assert_eq!(code, 1);
    assert!(String::from_utf8_lossy(&err).contains("AccessDenied"));
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = edge::cli::run_args(
        [
            "edge",
            "dist",
            "list",
            "--endpoint",
            &format!("http://{addr}"),
            "--token",
            TOKEN,
        ],
        &mut out,
        &mut err,
    )
    .await;
    assert_eq!(code, 1);
    let err = String::from_utf8_lossy(&err);
    assert!(err.contains("cannot reach the control API"), "{err}");
}

/// README's "Blue/green in three commands", as written there.
#[tokio::test]
async fn blue_green_in_three_commands() {
    let (blue, green) = (
        Origin::start(|_| Reply::ok("blue").header("cache-control", "max-age=60")).await,
        Origin::start(|_| Reply::ok("green").header("cache-control", "max-age=60")).await,
    );
    let edge = Edge::start().await;
    let d = edge
        .create(json!({
            "aliases": ["www.three.test"],
            "origins": [{"id": "blue", "domain_name": blue.domain(), "protocol": "http"},
                        {"id": "green", "domain_name": green.domain(), "protocol": "http"}],
            "default_cache_behavior": {"target_origin_id": "blue"},
        }))
        .await;
    let id = d["id"].as_str().expect("an id");

    let staging = edge_cli(
        &edge,
        &[
            "cd",
            "create-staging",
            id,
            "--target",
            "green",
            "--output",
            "id",
        ],
    )
    .await
    .ok();
    let staging = staging.trim();
    assert!(staging.starts_with('E') && staging.len() == 14, "{staging}");
    edge_cli(
        &edge,
        &[
            "cd",
            "policy",
            "create",
            "--staging",
            staging,
            "--weight",
            "10%",
            "--attach",
            id,
        ],
    )
    .await
    .ok();
    let mut green_seen = 0;
    for i in 0..1000 {
        if edge.get("www.three.test", &format!("/{i}")).await.text() == "green" {
            green_seen += 1;
        }
    }
    assert!(
        (50..=150).contains(&green_seen),
        "{green_seen} of 1000 on green"
    );
    edge_cli(&edge, &["cd", "promote", id, "--staging", staging])
        .await
        .ok();
    for i in 0..100 {
        assert_eq!(
            edge.get("www.three.test", &format!("/after/{i}"))
                .await
                .text(),
            "green"
        );
    }
    let ids = edge_cli(&edge, &["dist", "list", "--output", "id"])
        .await
        .ok();
    assert_eq!(ids.lines().count(), 2, "{ids}");
}

#[tokio::test]
async fn import_cloudfront_creates_the_distribution_and_names_what_it_left() {
    let origin = Origin::start(|seen| {
        Reply::ok(format!("app{}", seen.target)).header("cache-control", "max-age=60")
    })
    .await;
    let edge = Edge::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let port: u64 = origin
        .domain()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    // What `aws cloudfront get-distribution-config` prints for a small site
    // with a Lambda@Edge router and WAF.
    let document = json!({
        "ETag": "E1ABCDEF",
        "DistributionConfig": {
            "CallerReference": "site-2024",
            "Aliases": {"Quantity": 1, "Items": ["shop.example.com"]},
            "DefaultRootObject": "",
            "Origins": {"Quantity": 1, "Items": [{
                "Id": "app", "DomainName": "127.0.0.1", "OriginPath": "/v2",
                "CustomHeaders": {"Quantity": 0},
                "CustomOriginConfig": {"HTTPPort": port, "HTTPSPort": 443,
                    "OriginProtocolPolicy": "http-only", "OriginReadTimeout": 30,
                    "OriginKeepaliveTimeout": 5,
                    "OriginSslProtocols": {"Quantity": 1, "Items": ["TLSv1.2"]}},
                "ConnectionAttempts": 1, "ConnectionTimeout": 10,
                "OriginShield": {"Enabled": false}, "OriginAccessControlId": ""
            }]},
            "DefaultCacheBehavior": {
                "TargetOriginId": "app",
                "ViewerProtocolPolicy": "allow-all",
                "AllowedMethods": {"Quantity": 7, "Items": ["HEAD", "DELETE", "POST", "GET", "OPTIONS", "PUT", "PATCH"]},
                "Compress": false,
                "LambdaFunctionAssociations": {"Quantity": 1, "Items": [{
                    "LambdaFunctionARN": "arn:aws:lambda:us-east-1:123456789012:function:router:3",
                    "EventType": "origin-request", "IncludeBody": false}]},
                "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6"
            },
            "CacheBehaviors": {"Quantity": 0},
            "Comment": "imported shop",
            "Enabled": true,
            "PriceClass": "PriceClass_All",
            "ViewerCertificate": {"CloudFrontDefaultCertificate": true},
            "Restrictions": {"GeoRestriction": {"RestrictionType": "none", "Quantity": 0}},
            "WebACLId": "arn:aws:wafv2:us-east-1:123456789012:global/webacl/shop/1",
            "HttpVersion": "http2"
        }
    });
    let file = write_json(&dir, "shop.json", &document);

    // A dry run prints the config and creates nothing.
    let dry = edge_cli(&edge, &["import", "cloudfront", &file, "--dry-run"])
        .await
        .json();
    assert_eq!(
        dry["config"]["default_cache_behavior"]["default_ttl"],
        86_400
    );
    let list = edge.api("GET", "/v1/distributions", None, &[]).await.json();
    assert_eq!(list["quantity"], 0, "{list}");

    let out = edge_cli(&edge, &["import", "cloudfront", &file]).await.ok();
    assert!(out.contains("not carried (3):"), "{out}");
    assert!(out.contains("function:router:3"), "{out}");
    assert!(out.contains("hooks.origin_request"), "{out}");
    assert!(out.contains("WebACLId"), "{out}");
    let got = edge.get("shop.example.com", "/cart").await;
    assert_eq!(got.text(), "app/v2/cart");
    assert_eq!(edge.get("shop.example.com", "/cart").await.cache(), "Hit");

    // A document that is not a distribution config is refused, exit 1.
    let bad = write_json(&dir, "bad.json", &json!({"Origins": {"Quantity": 0}}));
    let run = edge_cli(&edge, &["import", "cloudfront", &bad]).await;
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(run.err.contains("Origins"), "{}", run.err);
}

#[tokio::test]
async fn import_cloudfront_caching_disabled_all_viewer_forwards_query_and_cookies() {
    // An API origin that echoes what it was sent.
    let origin = Origin::start(|seen| {
        let cookie = seen
            .headers
            .get("cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        Reply::ok(format!("{} {cookie}", seen.target))
    })
    .await;
    let edge = Edge::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let port: u64 = origin
        .domain()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let document = json!({
        "ETag": "E2API",
        "DistributionConfig": {
            "CallerReference": "api-2024",
            "Aliases": {"Quantity": 1, "Items": ["api.example.com"]},
            "Origins": {"Quantity": 1, "Items": [{
                "Id": "api", "DomainName": "127.0.0.1", "OriginPath": "",
                "CustomHeaders": {"Quantity": 0},
                "CustomOriginConfig": {"HTTPPort": port, "HTTPSPort": 443,
                    "OriginProtocolPolicy": "http-only"},
                "ConnectionAttempts": 1, "ConnectionTimeout": 10
            }]},
            "DefaultCacheBehavior": {
                "TargetOriginId": "api",
                "ViewerProtocolPolicy": "allow-all",
                "AllowedMethods": {"Quantity": 7, "Items": ["HEAD", "DELETE", "POST", "GET", "OPTIONS", "PUT", "PATCH"]},
                "Compress": false,
                // CachingDisabled and AllViewer.
                "CachePolicyId": "4135ea2d-6df8-44a3-9df3-4b5a84be39ad",
                "OriginRequestPolicyId": "216adef6-5c7f-47e4-b989-5492eafa07d3"
            },
            "Comment": "api",
            "Enabled": true
        }
    });
    let file = write_json(&dir, "api.json", &document);
    let out = edge_cli(&edge, &["import", "cloudfront", &file, "--output", "json"])
        .await
        .json();
    let behavior = &out["distribution"]["config"]["default_cache_behavior"];
    assert_eq!(
        behavior["origin_request"],
        json!({"query_strings": "all", "headers": "all", "cookies": "all"}),
        "{out}"
    );
    let notes = out["not_carried"].to_string();
    assert!(notes.contains("Host is not forwarded"), "{notes}");

    let cookies = [("cookie", "session=abc; theme=dark")];
    let got = edge
        .request("GET", "api.example.com", "/v1/me?fields=name&x=1", &cookies)
        .await;
    assert_eq!(got.text(), "/v1/me?fields=name&x=1 session=abc; theme=dark");
    // Nothing is stored: every viewer gets its own answer.
    let cookies = [("cookie", "session=other")];
    let again = edge
        .request("GET", "api.example.com", "/v1/me?fields=id", &cookies)
        .await;
    assert_eq!(again.text(), "/v1/me?fields=id session=other");
    assert_eq!(origin.hits(), 2);

    // A custom policy is read from `get-origin-request-policy` output.
    let mut custom = document.clone();
    custom["DistributionConfig"]["DefaultCacheBehavior"]["OriginRequestPolicyId"] =
        json!("custom-api");
    let custom = write_json(&dir, "custom.json", &custom);
    let policy = write_json(
        &dir,
        "policy.json",
        &json!({"ETag": "E1", "OriginRequestPolicy": {"Id": "custom-api",
            "OriginRequestPolicyConfig": {"Name": "api",
                "HeadersConfig": {"HeaderBehavior": "none"},
                "CookiesConfig": {"CookieBehavior": "whitelist", "Cookies": {"Quantity": 1, "Items": ["session"]}},
                "QueryStringsConfig": {"QueryStringBehavior": "all"}}}}),
    );
    let dry = edge_cli(
        &edge,
        &[
            "import",
            "cloudfront",
            &custom,
            "--origin-request-policy",
            &policy,
            "--dry-run",
        ],
    )
    .await
    .json();
    assert_eq!(
        dry["config"]["default_cache_behavior"]["origin_request"],
        json!({"query_strings": "all", "headers": [], "cookies": ["session"]}),
        "{dry}"
    );
    let bad = write_json(&dir, "bad-policy.json", &json!({"OriginRequestPolicy": {}}));
    let run = edge_cli(
        &edge,
        &[
            "import",
            "cloudfront",
            &custom,
            "--origin-request-policy",
            &bad,
            "--dry-run",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(
        run.err.contains("bad-policy.json: OriginRequestPolicy.Id"),
        "{}",
        run.err
    );
}

/// The events an `edge hook test --json` report ran, in order.
fn event_names(report: &Value) -> Vec<&str> {
    report["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event"].as_str().expect("event"))
        .collect()
}

/// `edge hook test`, which needs no host.
async fn hook_test(args: &[&str]) -> Run {
    let mut argv = vec!["edge", "hook", "test"];
    argv.extend_from_slice(args);
    local_verb(&argv).await
}

#[tokio::test]
async fn hook_test_sends_fetch_requests_to_its_backends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let api = Origin::start(|req| {
        Reply::ok(format!("api saw {}", req.target)).header("cache-control", "max-age=60")
    })
    .await;
    let stranger = Origin::start(|_| Reply::ok("stranger")).await;
    let config = |url: String| {
        write_json(
            &dir,
            "fetch.json",
            &json!({"viewer_request": "fetch", "fetch_url": url}),
        )
    };
    let to_api = config(format!("http://{}/v1/check", api.domain()));
    let backend = format!("api=http://{}", api.domain());
    // With the backend declared, the request is sent for real.
    let run = hook_test(&[MISBEHAVE, "--config", &to_api, "--backend", &backend]).await;
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    assert!(run.out.contains("+ x-fetch: 200"), "{}", run.out);
    assert!(
        run.out.contains("+ x-fetch-body: api saw /v1/check"),
        "{}",
        run.out
    );
    assert_eq!(api.hits(), 1);
    // The report lists each request the event sent.
    let url = format!("http://{}/v1/check", api.domain());
    assert!(
        run.out.contains(&format!("fetch GET {url} -> 200\n")),
        "{}",
        run.out
    );
    // With --fetch-cache, a second request is answered by the first's
    // answer, as `"cache": true` would have it.
    let twice = write_json(
        &dir,
        "twice.json",
        &json!({"viewer_request": "fetch", "fetch_url": url, "fetch_times": "2"}),
    );
    let run = hook_test(&[
        MISBEHAVE,
        "--config",
        &twice,
        "--backend",
        &backend,
        "--fetch-cache",
        "-o",
        "json",
    ])
    .await;
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    let report: Value = serde_json::from_str(&run.out).expect("a JSON report");
    let outcomes: Vec<&str> = report["events"][0]["fetches"]
        .as_array()
        .expect("fetches")
        .iter()
        .map(|f| f["outcome"].as_str().expect("an outcome"))
        .collect();
    assert_eq!(outcomes, ["200 (cache miss)", "200 (cache hit)"]);
    assert_eq!(api.hits(), 2);
    // Without it the hook may send nothing; to another server, it may not.
    let run = hook_test(&[MISBEHAVE, "--config", &to_api]).await;
    assert!(run.out.contains("+ x-fetch: not-permitted"), "{}", run.out);
    let to_stranger = config(format!("http://{}/", stranger.domain()));
    let run = hook_test(&[MISBEHAVE, "--config", &to_stranger, "--backend", &backend]).await;
    assert!(run.out.contains("+ x-fetch: not-declared"), "{}", run.out);
    assert_eq!(stranger.connections(), 0);
    // From a HAR file: each request answered by its entry, no network.
    let har = write_json(
        &dir,
        "api.har",
        &json!({"log": {"entries": [
            {"request": {"method": "GET", "url": "http://api.internal:8080/v1/check", "headers": []},
             "response": {"status": 200, "headers": [{"name": "content-type", "value": "text/plain"}],
                          "content": {"text": "ZnJvbSB0aGUgaGFy", "encoding": "base64"}}}
        ]}}),
    );
    let from_har = |url: &str| config(url.to_owned());
    let run = hook_test(&[
        MISBEHAVE,
        "--config",
        &from_har("http://api.internal:8080/v1/check"),
        "--fetch-har",
        &har,
    ])
    .await;
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    assert!(
        run.out.contains("+ x-fetch-body: from the har"),
        "{}",
        run.out
    );
    assert!(
        run.out
            .contains("fetch GET http://api.internal:8080/v1/check -> 200\n"),
        "{}",
        run.out
    );
    // A recorded server without the entry fails; another server is not
    // declared.
    let run = hook_test(&[
        MISBEHAVE,
        "--config",
        &from_har("http://api.internal:8080/v1/other"),
        "--fetch-har",
        &har,
    ])
    .await;
    assert!(run.out.contains("+ x-fetch: failed"), "{}", run.out);
    assert!(run.out.contains("no entry of"), "{}", run.out);
    let run = hook_test(&[
        MISBEHAVE,
        "--config",
        &from_har("http://api.internal:9090/v1/check"),
        "--fetch-har",
        &har,
    ])
    .await;
    assert!(run.out.contains("+ x-fetch: not-declared"), "{}", run.out);
    let bad = hook_test(&[MISBEHAVE, "--backend", "api.internal"]).await;
    assert_ne!(bad.code, 0);
    assert!(
        bad.err.contains("expected ID=http(s)://HOST[:PORT]"),
        "{}",
        bad.err
    );
}

#[tokio::test]
async fn secrets_are_set_from_files_and_listed_without_values() {
    let edge = Edge::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("stripe.key");
    std::fs::write(&file, "sk_test_cli_value").expect("write");
    let set = edge_cli(
        &edge,
        &[
            "secret",
            "put",
            "payments",
            "stripe",
            "--file",
            &file.to_string_lossy(),
        ],
    )
    .await
    .ok();
    assert_eq!(set, "payments/stripe set (version 1)\n");
    let again = edge_cli(
        &edge,
        &[
            "secret",
            "put",
            "payments",
            "stripe",
            "--file",
            &file.to_string_lossy(),
        ],
    )
    .await
    .ok();
    assert!(again.contains("version 2"), "{again}");
    let stores = edge_cli(&edge, &["secret", "list"]).await.ok();
    assert!(
        stores.contains("payments") && stores.contains('1'),
        "{stores}"
    );
    let names = edge_cli(&edge, &["secret", "list", "payments"]).await.ok();
    assert!(names.contains("stripe") && names.contains('2'), "{names}");
    let json = edge_cli(&edge, &["secret", "list", "payments", "-o", "json"])
        .await
        .ok();
    for shown in [&stores, &names, &json, &set] {
        assert!(!shown.contains("sk_test_cli_value"), "{shown}");
    }
    // A value is never taken from the command line.
    let refused = edge_cli(&edge, &["secret", "put", "payments", "x", "value"]).await;
    assert_ne!(refused.code, 0);
    edge_cli(&edge, &["secret", "delete", "payments", "stripe"])
        .await
        .ok();
    let gone = edge_cli(&edge, &["secret", "delete", "payments", "stripe"]).await;
    assert!(gone.err.contains("NoSuchSecret"), "{}", gone.err);

    // `edge hook test --secret` gives the hook the stores it names.
    let config = write_json(
        &dir,
        "secret.json",
        &json!({"viewer_request": "secret", "secret_store": "payments", "secret_name": "stripe"}),
    );
    let run = hook_test(&[
        MISBEHAVE,
        "--config",
        &config,
        "--secret",
        "payments/stripe=s3cr3t",
    ])
    .await;
    assert!(run.out.contains("+ x-secret: s3cr3t"), "{}", run.out);
    let run = hook_test(&[
        MISBEHAVE,
        "--config",
        &config,
        "--secret",
        "other/stripe=s3cr3t",
    ])
    .await;
    assert!(run.out.contains("+ x-secret: not-permitted"), "{}", run.out);
}

#[tokio::test]
async fn hook_test_gives_bodies_with_include_body() {
    let dir = tempfile::tempdir().expect("temp dir");
    let response = write_json(
        &dir,
        "page.json",
        &json!({"status": 200, "headers": {"content-type": "text/html", "etag": "\"a\""},
                "body": "<body><p>hi</p></body>"}),
    );
    let config = write_json(&dir, "config.json", &json!({"banner": "<b>B</b>"}));
    let args = [HTML_REWRITE, "--response", &response, "--config", &config];
    // Without --include-body origin-response is given no body and changes
    // nothing.
    let plain = hook_test(&args).await;
    assert_eq!(plain.code, 0, "{}{}", plain.out, plain.err);
    assert!(!plain.out.contains("body replaced"), "{}", plain.out);
    // With it, the page is given and rewritten, and the report shows both.
    let mut with_body = args.to_vec();
    with_body.push("--include-body");
    let run = hook_test(&with_body).await;
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    assert!(run.out.contains("given the body (22 bytes)"), "{}", run.out);
    assert!(
        run.out
            .contains(r#"body: "<body><b>B</b><p>hi</p></body>""#),
        "{}",
        run.out
    );
    with_body.push("--json");
    let report = hook_test(&with_body).await.json();
    assert_eq!(
        report["events"][3]["body_replaced"], "<body><b>B</b><p>hi</p></body>",
        "{report}"
    );
    // Over the limit: given truncated, or refused with the host's answer.
    let long = write_json(
        &dir,
        "long.json",
        &json!({"headers": {"content-type": "text/html"}, "body": "x".repeat(2000)}),
    );
    let truncated = hook_test(&[
        HTML_REWRITE,
        "--response",
        &long,
        "--include-body",
        "--body-limit-kib",
        "1",
    ])
    .await;
    assert!(
        truncated
            .out
            .contains("given the first 1024 of 2000 body bytes (truncated)"),
        "{}",
        truncated.out
    );
    assert!(
        !truncated.out.contains("body replaced"),
        "{}",
        truncated.out
    );
    let refused = hook_test(&[
        HTML_REWRITE,
        "--response",
        &long,
        "--include-body",
        "--body-limit-kib",
        "1",
        "--body-over-limit",
        "reject",
    ])
    .await;
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .err
            .contains("the host would answer 502 OriginBodyTooLarge"),
        "{}",
        refused.err
    );
    // A request body reaches viewer-request the same way.
    let request = write_json(
        &dir,
        "post.json",
        &json!({"method": "POST", "uri": "/form", "body": "a=1"}),
    );
    let config = write_json(&dir, "upper.json", &json!({"viewer_request": "body-upper"}));
    let run = hook_test(&[
        MISBEHAVE,
        "--request",
        &request,
        "--config",
        &config,
        "--include-body",
    ])
    .await;
    assert!(
        run.out.contains("body replaced (3 bytes): \"A=1\""),
        "{}",
        run.out
    );
}

#[tokio::test]
async fn hook_test_runs_the_events_the_way_the_host_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A viewer with a green cookie goes to green, through every event.
    let request = write_json(
        &dir,
        "green.json",
        &json!({"method": "GET", "uri": "/index.html?v=2",
                "headers": {"host": "www.example.com", "cookie": "deployment=green"}}),
    );
    let report = hook_test(&[
        BLUEGREEN,
        "--request",
        &request,
        "--origin",
        "blue",
        "--json",
    ])
    .await
    .json();
    let events = event_names(&report);
    assert_eq!(
        events,
        [
            "viewer-request",
            "origin-request",
            "origin",
            "origin-response",
            "viewer-response"
        ]
    );
    assert_eq!(report["events"][0]["origin"], "green");
    assert_eq!(report["events"][0]["request"]["uri"], "/index.html?v=2");
    assert!(
        report["events"][0]["memory_bytes"]
            .as_u64()
            .expect("memory")
            > 0
    );
    // CPU time is measured, and a hook cannot use more CPU than wall time.
    let (cpu, wall) = (
        report["events"][0]["cpu_ms"].as_f64().expect("cpu_ms"),
        report["events"][0]["ms"].as_f64().expect("ms"),
    );
    assert!(
        cpu > 0.0 && cpu <= wall + 0.01,
        "cpu {cpu} ms, wall {wall} ms"
    );
    assert_eq!(report["status"], 200);

    // The same viewer from a browser's HAR export (HTTP/2 pseudo-headers skipped).
    let har = write_json(
        &dir,
        "page.har",
        &json!({"log": {"version": "1.2", "entries": [{"request": {
            "method": "GET", "url": "https://www.example.com/a?b=1", "httpVersion": "h2",
            "headers": [{"name": ":authority", "value": "www.example.com"},
                        {"name": "Cookie", "value": "deployment=green"}]
        }}]}}),
    );
    let report = hook_test(&[BLUEGREEN, "--har", &har, "--origin", "blue", "--json"])
        .await
        .json();
    assert_eq!(report["events"][0]["origin"], "green");
    assert_eq!(report["events"][0]["request"]["uri"], "/a?b=1");

    // A fresh viewer, with all traffic on green by KV: the sticky cookie is set.
    let out = hook_test(&[
        BLUEGREEN,
        "--kv",
        "bluegreen/green_weight=100",
        "--origin",
        "blue",
    ])
    .await
    .ok();
    assert!(out.contains("to origin green"), "{out}");
    assert!(out.contains("+ set-cookie: deployment=green"), "{out}");

    // A viewer-request answer skips the origin's events, as in the host.
    let config = write_json(&dir, "auth.json", &json!({"key": "k"}));
    let report = hook_test(&[EDGE_AUTH, "--config", &config, "--json"])
        .await
        .json();
    let events = event_names(&report);
    assert_eq!(events, ["viewer-request", "viewer-response"]);
    assert_eq!(report["events"][0]["outcome"], "respond");
    assert_eq!(report["status"], 401);

    // A hook that runs past its budget fails the run with the host's status.
    let looping = write_json(&dir, "loop.json", &json!({"viewer_request": "loop"}));
    let run = hook_test(&[MISBEHAVE, "--config", &looping]).await;
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(run.err.contains("viewer-request"), "{}", run.err);
    assert!(run.err.contains("503"), "{}", run.err);
    // An origin a hook picks must be one the behavior has, when listed.
    let reroute = write_json(&dir, "reroute.json", &json!({"viewer_request": "reroute"}));
    let run = hook_test(&[MISBEHAVE, "--config", &reroute, "--origins", "web"]).await;
    assert_eq!(run.code, 1);
    assert!(run.err.contains("502"), "{}", run.err);
    // Logs are shown under their event.
    let log = write_json(&dir, "log.json", &json!({"origin_request": "log"}));
    let out = hook_test(&[MISBEHAVE, "--config", &log]).await.ok();
    assert!(out.contains("log: origin_request saw /"), "{out}");

    // The events of one run share one instance, as one request's do in the
    // host: what viewer-request kept, viewer-response reports.
    let out = hook_test(&[REQUEST_STATE]).await.ok();
    assert!(out.contains("+ x-calls: 4"), "{out}");
    assert!(out.contains("+ x-first-path: /"), "{out}");
    assert_eq!(out.matches("(instantiate ").count(), 1, "{out}");
    assert_eq!(out.matches("(the request's instance)").count(), 3, "{out}");
}

#[tokio::test]
async fn a_new_plugin_builds_tests_uploads_and_routes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let parent = dir.path().to_string_lossy().into_owned();
    let made = local_verb(&["edge", "hook", "new", "canary", "--dir", &parent])
        .await
        .ok();
    let crate_dir = made.trim().to_owned();
    // Share the examples' target dir: the SDK's dependencies are built there.
    let examples_target = std::path::Path::new(BLUEGREEN)
        .ancestors()
        .nth(3)
        .expect("the examples' target dir")
        .to_string_lossy()
        .into_owned();
    let built = local_verb(&[
        "edge",
        "hook",
        "build",
        &crate_dir,
        "--target-dir",
        &examples_target,
    ])
    .await
    .ok();
    let wasm = built.trim().to_owned();
    assert!(wasm.ends_with("canary.wasm"), "{wasm}");

    let request = format!("{crate_dir}/request.json");
    let out = hook_test(&[&wasm, "--request", &request, "--origins", "origin,canary"])
        .await
        .ok();
    assert!(out.contains("to origin canary"), "{out}");
    assert!(out.contains("+ x-hook: canary"), "{out}");
    assert!(out.contains("+ x-routed: canary"), "{out}");

    let edge = Edge::start().await;
    edge_cli(&edge, &["hook", "upload", "canary", &wasm])
        .await
        .ok();
    edge_e2e::assert_new_plugin_routes(&edge, json!({"module": "canary"})).await;
}

/// A verb that needs no host, with its full argv.
async fn local_verb(argv: &[&str]) -> Run {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = edge::cli::run_args(argv.to_vec(), &mut out, &mut err).await;
    Run {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

#[tokio::test]
async fn edge_dev_reloads_config_and_hooks_when_their_files_change() {
    use edge::cli::dev::{DevArgs, DevSession};

    let origin = Origin::start(|_| Reply::ok("local")).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = |alias: &str| {
        json!({
            "aliases": [alias],
            "origins": [{"id": "web", "domain_name": "127.0.0.1:1", "protocol": "http"}],
            "default_cache_behavior": {"target_origin_id": "web", "default_ttl": 0,
                "hooks": {"viewer_response": {"module": "sec"}}}
        })
    };
    let config_path = write_json(&dir, "dist.json", &config("dev.example.com"));
    let hook_path = dir.path().join("sec.wasm");
    std::fs::copy(edge_e2e::examples::SECURITY_HEADERS, &hook_path).expect("copy the hook");
    let args = DevArgs {
        config: config_path.clone().into(),
        origin: Some(format!("http://{}", origin.domain())),
        hooks: vec![format!("sec={}", hook_path.display())],
        listen: "127.0.0.1:0".parse().expect("address"),
        control: "127.0.0.1:0".parse().expect("address"),
        compile_cache: edge::cli::CompileCacheArgs {
            compile_cache: Some(dir.path().join("compiled")),
        },
    };
    let session = DevSession::start(&args).await.expect("edge dev starts");
    // What it compiled is kept where `edge hook test` keeps it, not in the
    // session's throw-away data dir.
    assert!(dir.path().join("compiled/wasm-cache").is_dir());
    assert!(dir.path().join("compiled/wasm-functions").is_dir());
    let client = edge_e2e::HttpClient::default();
    let viewer = session.host.viewer_addr;
    let get = |host: &'static str| {
        let client = client.clone();
        async move {
            let req = http::Request::get(format!("http://{viewer}/"))
                .header("host", host)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("request");
            client.send(req).await
        }
    };
    // --origin points the config's origin at the local server.
    let first = get("dev.example.com").await;
    assert_eq!(first.text(), "local");
    assert_eq!(first.header("x-frame-options"), Some("DENY"));

    let mut log = Vec::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watching = session.watch(&mut log, async {
        let _ = stopped.await;
    });
    let steps = async {
        // Give the watcher a moment to start watching.
        tokio::time::sleep(Duration::from_millis(300)).await;
        write_json(&dir, "dist.json", &config("dev2.example.com"));
        assert!(
            edge_e2e::eventually(Duration::from_secs(10), || async {
                get("dev2.example.com").await.text() == "local"
            })
            .await,
            "the new config was never served"
        );
        // A config that does not validate leaves the last good one serving.
        std::fs::write(&config_path, b"{\"origins\": []}").expect("write");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(get("dev2.example.com").await.text(), "local");
        // A new component under the hook's file serves from the next request.
        std::fs::copy(BLUEGREEN, &hook_path).expect("swap the hook");
        assert!(
            edge_e2e::eventually(Duration::from_secs(10), || async {
                get("dev2.example.com")
                    .await
                    .header("x-frame-options")
                    .is_none()
            })
            .await,
            "the new hook was never served"
        );
        let _ = stop.send(());
    };
    let (watched, ()) = tokio::join!(watching, steps);
    watched.expect("watching");
    let log = String::from_utf8_lossy(&log).into_owned();
    assert!(log.contains("config E"), "{log}");
    assert!(log.contains("config not reloaded"), "{log}");
    assert!(log.contains("hook sec: sha256:"), "{log}");
    session.host.shutdown().await;
}
