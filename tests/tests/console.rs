//! The web console in a real browser: headless Chromium (Debian's `chromium`)
//! driven by Playwright loads `/console/` from a running host and reports what
//! it shows; this test sends the traffic and checks the report against the API.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use edge_e2e::examples::SECURITY_HEADERS;
use edge_e2e::{Edge, Origin, Reply, TOKEN, Value, json};
use http::StatusCode;

/// `tests/browser`, with its npm packages installed (once) if missing.
fn browser_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser");
    if !dir.join("node_modules/playwright-core").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("running npm (Node.js is needed for the browser tests)");
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    dir
}

fn chromium() -> String {
    let path = std::env::var("EDGE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "no Chromium at {path}: install Debian's `chromium` (scripts/test.sh does) or set EDGE_CHROMIUM"
    );
    path
}

fn cells(row: &Value) -> Vec<String> {
    row.as_array()
        .expect("a row")
        .iter()
        .map(|c| c.as_str().expect("cell text").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_distributions_splits_and_rates_and_invalidates() {
    let primary_origin =
        Origin::start(|_| Reply::ok("primary").header("cache-control", "max-age=300")).await;
    // Staging fails every request for /fail: the console must show its 5xx rate.
    let staging_origin = Origin::start(|seen| {
        if seen.target.starts_with("/fail") {
            Reply::ok("broken").status(503)
        } else {
            Reply::ok("staging").header("cache-control", "max-age=300")
        }
    })
    .await;
    let edge = Edge::start().await;
    edge.upload_hook("security-headers", SECURITY_HEADERS).await;

    let site = |origin: &Origin, aliases: &[&str]| {
        json!({
            "comment": "shop <b>front</b>",
            "aliases": aliases,
            "origins": [{"id": "web", "domain_name": origin.domain(), "protocol": "http"}],
            "default_cache_behavior": {
                "target_origin_id": "web",
                "hooks": {"viewer_response": {"module": "security-headers"}},
            },
            "cache_behaviors": [{"path_pattern": "/fail*", "target_origin_id": "web", "default_ttl": 0}],
        })
    };
    let created = edge.create(site(&primary_origin, &["shop.test"])).await;
    let id = created["id"].as_str().expect("an id").to_owned();
    let staging = edge.staging_copy(&id, site(&staging_origin, &[])).await;
    let policy = edge
        .api(
            "POST",
            "/v1/continuous-deployment-policies",
            Some(json!({
                "staging_distribution_id": staging,
                "traffic": {"type": "header", "header": "x-edge-staging", "value": "true"},
            })),
            &[],
        )
        .await;
    assert_eq!(policy.status, StatusCode::CREATED, "{}", policy.text());
    let policy = policy.json()["id"].as_str().expect("an id").to_owned();
    let mut config = site(&primary_origin, &["shop.test"]);
    config["continuous_deployment_policy_id"] = json!(policy);
    let current = edge
        .api("GET", &format!("/v1/distributions/{id}"), None, &[])
        .await;
    let attached = edge
        .api(
            "PUT",
            &format!("/v1/distributions/{id}/config"),
            Some(config),
            &[("if-match", current.header("etag").expect("etag"))],
        )
        .await;
    assert_eq!(attached.status, StatusCode::OK, "{}", attached.text());

    // An object in the cache for the invalidation to drop.
    assert_eq!(edge.get("shop.test", "/cached").await.text(), "primary");
    assert_eq!(edge.get("shop.test", "/cached").await.cache(), "Hit");

    // Traffic on both arms while the browser watches: staging half 503s.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (client, viewer, stop) = (edge.client.clone(), edge.viewer, stop.clone());
        tokio::spawn(async move {
            let mut sent = 0_u64;
            while !stop.load(Ordering::SeqCst) {
                for (path, staging) in [("/page", false), ("/page", true), ("/fail", true)] {
                    let mut req = http::Request::builder()
                        .uri(format!("http://{viewer}{path}"))
                        .header("host", "shop.test");
                    if staging {
                        req = req.header("x-edge-staging", "true");
                    }
                    let req = req
                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                        .expect("request");
                    let _ = client.try_send(req).await;
                    sent += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sent
        })
    };

    let dir = browser_dir();
    let chromium = chromium();
    let base = format!("http://{}", edge.control);
    let (dir2, id2) = (dir.clone(), id.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("console.mjs")
            .args([&base, TOKEN, &id2])
            .env("EDGE_CHROMIUM", chromium)
            .env(
                "EDGE_CONSOLE_SCREENSHOT",
                std::env::var("EDGE_CONSOLE_SCREENSHOT").unwrap_or_default(),
            )
            .current_dir(dir2)
            .output()
            .expect("running node")
    })
    .await
    .expect("browser task");
    stop.store(true, Ordering::SeqCst);
    let sent = traffic.await.expect("traffic task");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "node failed: {stderr}\n{stdout}");
    let seen: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    eprintln!("the console showed (after {sent} viewer requests): {seen:#}");
    assert!(
        seen.get("failure").is_none(),
        "the browser run failed: {}",
        seen["failure"]
    );
    assert_eq!(seen["console_errors"], json!([]), "errors in the page");

    // A wrong token is refused and the login stays.
    assert_eq!(seen["wrong_token"]["login_visible"], true);
    assert!(
        seen["wrong_token"]["message"]
            .as_str()
            .expect("text")
            .contains("refused"),
        "{}",
        seen["wrong_token"]
    );
    // The token left the address bar.
    let address = seen["address_after_login"].as_str().expect("text");
    assert!(!address.contains(TOKEN), "{address}");
    assert!(
        seen["health"]
            .as_str()
            .expect("text")
            .contains("store connected")
    );

    // The list: both distributions, with the API's status and ETag.
    let listed = edge.api("GET", "/v1/distributions", None, &[]).await.json();
    let rows: Vec<Vec<String>> = seen["list"]
        .as_array()
        .expect("rows")
        .iter()
        .map(cells)
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for item in listed["items"].as_array().expect("items") {
        let row = rows
            .iter()
            .find(|r| r[0] == item["id"].as_str().expect("id"))
            .unwrap_or_else(|| panic!("{} not listed: {rows:?}", item["id"]));
        assert_eq!(row[3], item["status"].as_str().expect("status"));
        assert_eq!(row[4], item["etag"].as_str().expect("etag"));
    }
    let primary_row = rows.iter().find(|r| r[0] == id).expect("primary row");
    assert_eq!(primary_row[2], "shop.test");
    assert_eq!(primary_row[6], "primary");
    // A comment with markup shows as text.
    assert_eq!(primary_row[7], "shop <b>front</b>");
    assert!(rows.iter().any(|r| r[0] == staging && r[6] == "staging"));

    // The distribution's page: its ETag, origins, behaviors with hooks.
    let detail = &seen["detail"];
    let now = edge
        .api("GET", &format!("/v1/distributions/{id}"), None, &[])
        .await;
    assert_eq!(detail["id"], json!(id));
    assert_eq!(detail["etag"].as_str(), now.header("etag"));
    assert_eq!(detail["status"], "Deployed");
    let origins: Vec<Vec<String>> = detail["origins"]
        .as_array()
        .expect("rows")
        .iter()
        .map(cells)
        .collect();
    assert_eq!(
        origins,
        vec![vec![
            "web".to_owned(),
            primary_origin.domain(),
            "http".to_owned(),
            String::new(),
            format!("{}: healthy", primary_origin.domain()),
        ]]
    );
    let behaviors: Vec<Vec<String>> = detail["behaviors"]
        .as_array()
        .expect("rows")
        .iter()
        .map(cells)
        .collect();
    assert_eq!(behaviors.len(), 2, "{behaviors:?}");
    assert_eq!(behaviors[0][1], "web");
    assert_eq!(behaviors[0][3], "viewer-response: security-headers");
    assert_eq!(behaviors[1][0], "/fail*");
    assert_eq!(behaviors[1][2], "0 / 0 / 31536000");

    // The split: the policy, its rule and the staging distribution.
    assert_eq!(seen["split"]["policy"], json!(policy));
    assert_eq!(seen["split"]["staging"], json!(staging));
    assert_eq!(seen["split"]["enabled"], "enabled");
    let rule = seen["split"]["rule"].as_str().expect("text");
    assert!(rule.contains("x-edge-staging: true"), "{rule}");
    assert_eq!(
        seen["split"]["gate"],
        "No automatic gate: staging's errors are not watched."
    );
    // The staging page says it serves a share of its primary's viewers.
    let staged = seen["staging_page"]["staged"].as_str().expect("text");
    assert!(
        staged.contains(&format!("share of {id}'s viewers")) && staged.contains(&policy),
        "{staged}"
    );
    assert_eq!(seen["staging_page"]["none_visible"], false);

    // Live rates: both arms carry traffic; staging's 5xx rate is about half,
    // primary's none.
    let rates = &seen["rates"];
    let number = |v: &Value| -> f64 {
        v.as_str()
            .expect("text")
            .trim_end_matches(" %")
            .parse()
            .unwrap_or_else(|e| panic!("{v}: {e}"))
    };
    assert!(number(&rates["primary"]["rps"]) > 0.0, "{rates}");
    assert!(number(&rates["staging"]["rps"]) > 0.0, "{rates}");
    assert_eq!(number(&rates["primary"]["eps"]), 0.0, "{rates}");
    let staging_rate = number(&rates["staging"]["erate"]);
    assert!((20.0..=80.0).contains(&staging_rate), "{rates}");
    assert!(number(&rates["staging"]["errors"]) > 0.0, "{rates}");

    // The invalidation the form sent exists, with the paths typed, and
    // dropped the cached object.
    let result = seen["invalidation_result"].as_str().expect("text");
    assert!(result.contains("1 objects dropped"), "{result}");
    let listed = edge
        .api(
            "GET",
            &format!("/v1/distributions/{id}/invalidations"),
            None,
            &[],
        )
        .await
        .json();
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["paths"], json!(["/cached", "/img/*"]));
    let shown: Vec<Vec<String>> = seen["invalidations"]
        .as_array()
        .expect("rows")
        .iter()
        .map(cells)
        .collect();
    assert_eq!(shown[0][0], items[0]["id"].as_str().expect("id"));
    assert_eq!(shown[0][1], "Completed");
    assert_eq!(edge.get("shop.test", "/cached").await.cache(), "Miss");
}

#[tokio::test]
async fn the_console_assets_need_no_token_but_its_data_does() {
    let edge = Edge::start().await;
    let page = edge
        .api_raw("GET", "/console/", Vec::new(), &[], None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("<title>Edge console</title>"));
    assert!(
        page.header("content-security-policy")
            .expect("a CSP")
            .contains("script-src 'self'")
    );
    let redirect = edge.api_raw("GET", "/console", Vec::new(), &[], None).await;
    assert_eq!(redirect.status, StatusCode::PERMANENT_REDIRECT);
    let missing = edge
        .api_raw("GET", "/console/nope.js", Vec::new(), &[], None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "NotFound");
    let traffic = edge
        .api_raw("GET", "/v1/traffic", Vec::new(), &[], None)
        .await;
    assert_eq!(traffic.status, StatusCode::UNAUTHORIZED);
    let traffic = edge.api("GET", "/v1/traffic", None, &[]).await;
    assert_eq!(traffic.status, StatusCode::OK);
    assert_eq!(traffic.json(), json!({"distributions": []}));
    // Not reachable from the viewer side.
    let through_viewer = edge.get("anything.test", "/console/").await;
    assert_ne!(through_viewer.status, StatusCode::OK);
}
