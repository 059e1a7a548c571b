//! JavaScript hooks: the JS SDK (`guest-sdk/js`) and componentize-js build a
//! component for the same `hooks` world; the host runs it like any other.
//! The JS port of the bluegreen example routes by cookie and by a KV weight,
//! and a plugin made by `edge hook new --lang js` builds, tests and routes.

use std::path::Path;

use edge_e2e::{Edge, Origin, Reply, TOKEN, js, json, set_cookies};

/// A distribution on `alias` with origins `blue` and `green` and `hook` on
/// both viewer events. JS hooks take more CPU than compiled ones (the engine
/// interprets them), so the budget is raised from the 5 ms default.
fn bluegreen_site(alias: &str, hook: &str, blue: &Origin, green: &Origin) -> edge_e2e::Value {
    let association = json!({"module": hook, "cpu_budget_ms": 100});
    json!({
        "aliases": [alias],
        "origins": [
            {"id": "blue", "domain_name": blue.domain(), "protocol": "http"},
            {"id": "green", "domain_name": green.domain(), "protocol": "http"}
        ],
        "default_cache_behavior": {"target_origin_id": "blue", "default_ttl": 0, "hooks": {
            "viewer_request": association.clone(),
            "viewer_response": association,
        }}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_bluegreen_routes_by_cookie_and_by_kv_weight() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wasm = dir.path().join("bluegreen-js.wasm");
    tokio::task::spawn_blocking({
        let wasm = wasm.clone();
        move || js::build("examples/js/bluegreen/bluegreen.js", &wasm)
    })
    .await
    .expect("build task");
    let (blue, green) = (
        Origin::start(|_| Reply::ok("blue")).await,
        Origin::start(|_| Reply::ok("green")).await,
    );
    let edge = Edge::start().await;
    let version = edge
        .upload_hook("bluegreen-js", &wasm.to_string_lossy())
        .await;
    assert!(version.starts_with("sha256:"), "{version}");
    edge.create(bluegreen_site(
        "shop.example.com",
        "bluegreen-js",
        &blue,
        &green,
    ))
    .await;

    // The cookie decides, and a viewer who has one gets no new one.
    for arm in ["blue", "green"] {
        let got = edge
            .request(
                "GET",
                "shop.example.com",
                "/",
                &[("cookie", &format!("deployment={arm}"))],
            )
            .await;
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(got.text(), arm);
        assert!(set_cookies(&got).is_empty());
    }
    // Without one and no weight set, blue, made sticky.
    let fresh = edge.get("shop.example.com", "/").await;
    assert_eq!(fresh.text(), "blue");
    assert_eq!(set_cookies(&fresh), ["deployment=blue"]);
    let line = fresh
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a set-cookie");
    assert!(line.contains("Max-Age=86400"), "{line}");

    // One KV write moves every fresh viewer to green, with no redeploy.
    edge.kv_put("bluegreen", "green_weight", "100").await;
    let moved = edge.get("shop.example.com", "/").await;
    assert_eq!(moved.text(), "green");
    assert_eq!(set_cookies(&moved), ["deployment=green"]);

    // A 30 % weight: fresh viewers split near it (300 draws; ±15 points is
    // over five standard deviations).
    edge.kv_put("bluegreen", "green_weight", "30").await;
    let mut greens = 0;
    for _ in 0..300 {
        let got = edge.get("shop.example.com", "/").await;
        assert_eq!(got.status, 200, "{}", got.text());
        if got.text() == "green" {
            greens += 1;
            assert_eq!(set_cookies(&got), ["deployment=green"]);
        }
    }
    eprintln!("JavaScript bluegreen at 30 %: {greens} of 300 fresh viewers on green");
    assert!((45..=135).contains(&greens), "{greens} of 300 on green");

    // The hook's log lines reach the host's metrics as invocations.
    let metrics = edge
        .api_raw("GET", "/metrics", Vec::new(), &[], Some(TOKEN))
        .await;
    assert!(
        metrics.text().contains(
            "edge_hook_invocations_total{hook=\"bluegreen-js\",event=\"viewer-request\"} 304"
        ),
        "{}",
        metrics.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_html_rewrite_reads_and_replaces_the_origins_body() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wasm = dir.path().join("html-rewrite-js.wasm");
    tokio::task::spawn_blocking({
        let wasm = wasm.clone();
        move || js::build("examples/js/html-rewrite/html-rewrite.js", &wasm)
    })
    .await
    .expect("build task");
    let origin = Origin::start(|req| {
        let body = if req.target == "/long" {
            format!("<body>{}</body>", "x".repeat(3000))
        } else {
            "<html><body><p>hi</p></body></html>".to_owned()
        };
        Reply::ok(body)
            .header("content-type", "text/html")
            .header("etag", "\"e1\"")
            .header("cache-control", "max-age=60")
    })
    .await;
    let edge = Edge::start().await;
    edge.upload_hook("html-js", &wasm.to_string_lossy()).await;
    edge.create(json!({
        "aliases": ["js-html.example.com"],
        "origins": [{"id": "o", "domain_name": origin.domain(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "o", "hooks": {
            "origin_response": {"module": "html-js", "include_body": true, "body_limit_kib": 2,
                                "config": {"banner": "<b>JS</b>"}}}},
    }))
    .await;
    let page = edge.get("js-html.example.com", "/").await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(page.text(), "<html><body><b>JS</b><p>hi</p></body></html>");
    assert_eq!(page.header("etag"), Some("W/\"e1\""));
    assert_eq!(page.header("x-html-rewrite"), Some("banner"));
    let hit = edge.get("js-html.example.com", "/").await;
    assert_eq!(hit.cache(), "Hit");
    assert_eq!(hit.text(), page.text());
    // Longer than the 2 KiB the hook is given: passed whole, as it came.
    let long = edge.get("js-html.example.com", "/long").await;
    assert_eq!(long.text(), format!("<body>{}</body>", "x".repeat(3000)));
    assert_eq!(long.header("x-html-rewrite"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_auth_fetch_asks_its_backend() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wasm = dir.path().join("auth-fetch-js.wasm");
    tokio::task::spawn_blocking({
        let wasm = wasm.clone();
        move || js::build("examples/js/auth-fetch/auth-fetch.js", &wasm)
    })
    .await
    .expect("build task");
    let origin = Origin::start(|req| {
        let user = req
            .headers
            .get("x-user")
            .map_or("-", |v| v.to_str().unwrap_or("?"));
        Reply::ok(format!("user={user}"))
    })
    .await;
    let auth = Origin::start(|req| {
        match req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
        {
            Some("Bearer good") => Reply::ok("bob"),
            Some("Bearer broken") => Reply::ok("").status(502),
            _ => Reply::ok("no").status(403),
        }
    })
    .await;
    let edge = Edge::start().await;
    edge.upload_hook("auth-js", &wasm.to_string_lossy()).await;
    edge.create(json!({
        "aliases": ["js-auth.example.com"],
        "origins": [{"id": "o", "domain_name": origin.domain(), "protocol": "http"}],
        "backends": [{"id": "auth", "domain_name": auth.domain(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "o", "hooks": {
            "viewer_request": {"module": "auth-js", "fetch": {"max_requests": 1},
                               "config": {"auth_url": format!("http://{}/verify", auth.domain()),
                                          "cookie": "session"}}}},
    }))
    .await;
    let host = "js-auth.example.com";
    let got = edge
        .request(
            "GET",
            host,
            "/",
            &[("authorization", "Bearer good"), ("x-user", "eve")],
        )
        .await;
    assert_eq!(
        (got.status.as_u16(), got.text().as_str()),
        (200, "user=bob")
    );
    let got = edge
        .request("GET", host, "/", &[("cookie", "session=good")])
        .await;
    assert_eq!(got.text(), "user=bob");
    let got = edge
        .request("GET", host, "/", &[("authorization", "Bearer bad")])
        .await;
    assert_eq!(got.status, 401, "{}", got.text());
    let got = edge.get(host, "/").await;
    assert_eq!(got.status, 401, "{}", got.text());
    let got = edge
        .request("GET", host, "/", &[("authorization", "Bearer broken")])
        .await;
    assert_eq!(got.status, 503, "{}", got.text());
    // An auth backend that is not declared is never asked: 503, not a pass.
    let stranger = Origin::start(|_| Reply::ok("mallory")).await;
    edge.create(json!({
        "aliases": ["js-auth2.example.com"],
        "origins": [{"id": "o", "domain_name": origin.domain(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "o", "hooks": {
            "viewer_request": {"module": "auth-js", "fetch": {},
                               "config": {"auth_url": format!("http://{}/verify", stranger.domain())}}}},
    }))
    .await;
    let got = edge
        .request(
            "GET",
            "js-auth2.example.com",
            "/",
            &[("authorization", "Bearer good")],
        )
        .await;
    assert_eq!(got.status, 503, "{}", got.text());
    assert_eq!(stranger.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_tenant_router_routes_by_host() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wasm = dir.path().join("tenant-router-js.wasm");
    tokio::task::spawn_blocking({
        let wasm = wasm.clone();
        move || js::build("examples/js/tenant-router/tenant-router.js", &wasm)
    })
    .await
    .expect("build task");
    let tenants = Origin::start(|req| {
        let host = req
            .headers
            .get("host")
            .map_or("-", |v| v.to_str().unwrap_or("?"));
        Reply::ok(format!("host={host}")).header("cache-control", "max-age=60")
    })
    .await;
    let port = tenants
        .domain()
        .rsplit_once(':')
        .map(|(_, p)| p.to_owned())
        .expect("port");
    let edge = Edge::start().await;
    edge.upload_hook("tenants-js", &wasm.to_string_lossy())
        .await;
    edge.create(json!({
        "aliases": ["*.js-tenants.test"],
        "origins": [{"id": "o", "domain_name": "127.0.0.1:9", "protocol": "http"}],
        "dynamic_origins": {"allow": [format!("*.localhost:{port}")], "protocols": ["http"],
                            "allow_private_addresses": true},
        "default_cache_behavior": {"target_origin_id": "o", "hooks": {
            "viewer_request": {"module": "tenants-js", "config": {
                "origin_template": "{tenant}.localhost", "protocol": "http", "port": port}}}},
    }))
    .await;
    let got = edge.get("acme.js-tenants.test", "/").await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.text(), format!("host=acme.localhost:{port}"));
    let got = edge.get("initech.js-tenants.test", "/").await;
    assert_eq!(got.text(), format!("host=initech.localhost:{port}"));
    assert_eq!(edge.get("acme.js-tenants.test", "/").await.cache(), "Hit");
    assert_eq!(tenants.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_javascript_plugin_builds_tests_uploads_and_routes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let parent = dir.path().to_string_lossy().into_owned();
    let run = |argv: Vec<String>| async move {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = edge::cli::run_args(argv, &mut out, &mut err).await;
        let (out, err) = (
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        );
        assert_eq!(code, 0, "stderr: {err}\nstdout: {out}");
        out
    };
    let argv = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    let made = run(argv(&[
        "edge", "hook", "new", "canary", "--lang", "js", "--dir", &parent,
    ]))
    .await;
    let project = Path::new(made.trim()).to_path_buf();
    assert!(project.join("hook.js").exists());
    // The SDK's installed packages stand in for `npm install` (the scaffold
    // pins the same componentize-js).
    let sdk = tokio::task::spawn_blocking(js::sdk_dir).await.expect("npm");
    std::os::unix::fs::symlink(sdk.join("node_modules"), project.join("node_modules"))
        .expect("link node_modules");
    let built = run(argv(&["edge", "hook", "build", &project.to_string_lossy()])).await;
    let wasm = built.trim().to_owned();
    assert!(wasm.ends_with("hook.wasm"), "{wasm}");

    // `edge hook test` runs it in the host's runtime on the sample request.
    let request = project.join("request.json").to_string_lossy().into_owned();
    // With the defaults: a JavaScript hook gets the budgets meant for it.
    let out = run(argv(&[
        "edge",
        "hook",
        "test",
        &wasm,
        "--request",
        &request,
        "--origins",
        "origin,canary",
    ]))
    .await;
    assert!(out.contains("to origin canary"), "{out}");
    assert!(out.contains("+ x-hook: canary"), "{out}");
    assert!(out.contains("+ x-routed: canary"), "{out}");

    // Attached as the scaffold's README shows it, with no budget of its own.
    let readme = std::fs::read_to_string(project.join("README.md")).expect("README.md");
    let association = readme
        .split_once("\"viewer_request\": ")
        .and_then(|(_, rest)| rest.split_once(", \"viewer_response\""))
        .map(|(a, _)| a.to_owned())
        .expect("the README's association");
    let association: edge_e2e::Value = serde_json::from_str(&association).expect("JSON");
    assert_eq!(association, json!({"module": "canary"}));
    let edge = Edge::start().await;
    edge.upload_hook("canary", &wasm).await;
    let _origins = edge_e2e::assert_new_plugin_routes(&edge, association).await;
    // 10,000 requests through it, four viewers at a time: not one fails.
    let edge = std::sync::Arc::new(edge);
    let mut viewers = Vec::new();
    for v in 0..4 {
        let edge = edge.clone();
        viewers.push(tokio::spawn(async move {
            let mut failed = Vec::new();
            for i in 0..2500 {
                let got = edge.get("p.example.com", &format!("/{v}/{i}")).await;
                if got.status != 200 {
                    failed.push(format!("{}: {}", got.status, got.text()));
                }
            }
            failed
        }));
    }
    let mut failed = Vec::new();
    for viewer in viewers {
        failed.extend(viewer.await.expect("viewer"));
    }
    assert!(
        failed.is_empty(),
        "{} of 10000 failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_dev_rebuilds_a_javascript_plugin_with_one_builder_kept_running() {
    use edge::cli::dev::{DevArgs, DevSession};

    let dir = tempfile::tempdir().expect("temp dir");
    let parent = dir.path().to_string_lossy().into_owned();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let argv = vec![
        "edge", "hook", "new", "canary", "--lang", "js", "--dir", &parent,
    ];
    let code = edge::cli::run_args(argv, &mut out, &mut err).await;
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    let project = Path::new(String::from_utf8_lossy(&out).trim()).to_path_buf();
    let sdk = tokio::task::spawn_blocking(js::sdk_dir).await.expect("npm");
    std::os::unix::fs::symlink(sdk.join("node_modules"), project.join("node_modules"))
        .expect("link node_modules");
    let origin = Origin::start(|_| Reply::ok("local")).await;
    let config = dir.path().join("dist.json");
    let association = json!({"module": "canary"});
    std::fs::write(
        &config,
        json!({
            "aliases": ["dev.example.com"],
            "origins": [{"id": "web", "domain_name": "127.0.0.1:1", "protocol": "http"}],
            "default_cache_behavior": {"target_origin_id": "web", "default_ttl": 0, "hooks": {
                "viewer_request": association.clone(), "viewer_response": association}}
        })
        .to_string(),
    )
    .expect("write the config");
    let session = DevSession::start(&DevArgs {
        config,
        origin: Some(format!("http://{}", origin.domain())),
        hooks: vec![format!("canary={}", project.display())],
        listen: "127.0.0.1:0".parse().expect("address"),
        control: "127.0.0.1:0".parse().expect("address"),
        compile_cache: edge::cli::CompileCacheArgs {
            compile_cache: Some(dir.path().join("compiled")),
        },
    })
    .await
    .expect("edge dev starts");
    let client = edge_e2e::HttpClient::default();
    let viewer = session.host.viewer_addr;
    let hook_header = || {
        let client = client.clone();
        async move {
            let req = http::Request::get(format!("http://{viewer}/"))
                .header("host", "dev.example.com")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("request");
            let got = client.send(req).await;
            assert_eq!(got.text(), "local");
            got.header("x-hook").map(str::to_owned)
        }
    };
    assert_eq!(hook_header().await.as_deref(), Some("canary"));

    let source = project.join("hook.js");
    let original = std::fs::read_to_string(&source).expect("hook.js");
    let edit = |text: &str| std::fs::write(&source, text).expect("edit hook.js");
    let mut log = Vec::new();
    // Each edit is built by the builder the first build started.
    edit(&original.replace("\"x-hook\", \"canary\"", "\"x-hook\", \"canary-2\""));
    session.apply(std::slice::from_ref(&source), &mut log).await;
    assert_eq!(hook_header().await.as_deref(), Some("canary-2"));
    // A module that does not build leaves the last good one serving, and
    // the builder running.
    edit("export const events = ;\n");
    session.apply(std::slice::from_ref(&source), &mut log).await;
    assert_eq!(hook_header().await.as_deref(), Some("canary-2"));
    edit(&original.replace("\"x-hook\", \"canary\"", "\"x-hook\", \"canary-3\""));
    session.apply(std::slice::from_ref(&source), &mut log).await;
    assert_eq!(hook_header().await.as_deref(), Some("canary-3"));

    let log = String::from_utf8_lossy(&log).into_owned();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines[0].contains("by the builder kept running (build 2)"),
        "{log}"
    );
    assert!(lines[1].contains("hook canary not reloaded"), "{log}");
    assert!(lines[1].contains("hook.js"), "{log}");
    assert!(
        lines[2].contains("by the builder kept running (build 4)"),
        "{log}"
    );
    session.host.shutdown().await;
}
