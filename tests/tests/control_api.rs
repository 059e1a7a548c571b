//! The control API contract: create, read, replace with If-Match, delete, refusals
//! that change nothing, auth, and state that survives a restart.

use edge::control::DeployStatus;
use edge::control::views::{DistributionItem, Health, List};
use edge_e2e::{Edge, Origin, TOKEN, config_for, json};
use http::StatusCode;

async fn origin() -> Origin {
    Origin::fixed("hello", &[("cache-control", "max-age=60")]).await
}

#[tokio::test]
async fn create_get_list_and_config_carry_the_etag() {
    let edge = Edge::start().await;
    let o = origin().await;
    let mut config = config_for(&[("web", &o)]);
    config["aliases"] = json!(["www.example.com"]);
    config["comment"] = json!("shop");

    let created = edge
        .api("POST", "/v1/distributions", Some(config.clone()), &[])
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let body = created.json();
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with('E') && id.len() == 14, "{id}");
    assert_eq!(
        body["domain_name"],
        format!("{}.edge.internal", id.to_lowercase())
    );
    assert_eq!(
        created.header("location").unwrap(),
        format!("/v1/distributions/{id}")
    );
    let etag = created.header("etag").unwrap().to_owned();
    assert_eq!(body["etag"], etag.as_str());
    assert_eq!(body["config"]["comment"], "shop");

    let got = edge
        .api("GET", &format!("/v1/distributions/{id}"), None, &[])
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("etag"), Some(etag.as_str()));
    assert_eq!(got.json()["status"], "Deployed");
    assert!(got.json()["last_modified"].as_str().unwrap().ends_with('Z'));

    let cfg = edge
        .api("GET", &format!("/v1/distributions/{id}/config"), None, &[])
        .await;
    assert_eq!(cfg.header("etag"), Some(etag.as_str()));
    assert_eq!(cfg.json()["aliases"], json!(["www.example.com"]));
    assert_eq!(cfg.json()["enabled"], true);

    let list = edge.api("GET", "/v1/distributions", None, &[]).await.json();
    assert_eq!(list["quantity"], 1);
    let item = &list["items"][0];
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["aliases"], json!(["www.example.com"]));
    assert_eq!(item["status"], "Deployed");
    assert_eq!(item["enabled"], true);
    // The same list read into the view type the CLI reads it into.
    let typed: List<DistributionItem> =
        edge.api("GET", "/v1/distributions", None, &[]).await.view();
    assert_eq!(typed.quantity, 1);
    assert_eq!(typed.items[0].id, id);
    assert_eq!(typed.items[0].status, DeployStatus::Deployed);
    assert_eq!(typed.items[0].etag, etag);

    let missing = edge.api("GET", "/v1/distributions/ENOPE", None, &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "NoSuchDistribution");
}

#[tokio::test]
async fn put_needs_the_current_etag_and_refusals_change_nothing() {
    let edge = Edge::start().await;
    let o = origin().await;
    let created = edge.create(config_for(&[("web", &o)])).await;
    let id = created["id"].as_str().unwrap();
    let etag = created["etag"].as_str().unwrap().to_owned();
    let path = format!("/v1/distributions/{id}/config");
    let mut changed = config_for(&[("web", &o)]);
    changed["comment"] = json!("changed");

    let missing = edge.api("PUT", &path, Some(changed.clone()), &[]).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.error_code(), "InvalidIfMatchVersion");

    let stale = edge
        .api(
            "PUT",
            &path,
            Some(changed.clone()),
            &[("if-match", "E999999")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.error_code(), "PreconditionFailed");

    let now = edge.api("GET", &path, None, &[]).await;
    assert_eq!(
        now.header("etag"),
        Some(etag.as_str()),
        "a refused PUT changed the ETag"
    );
    assert_eq!(now.json()["comment"], "");

    let ok = edge
        .api("PUT", &path, Some(changed.clone()), &[("if-match", &etag)])
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let new_etag = ok.header("etag").unwrap().to_owned();
    assert_ne!(new_etag, etag);
    assert_eq!(ok.json()["config"]["comment"], "changed");

    // The old ETag is now stale: a second writer holding it cannot overwrite.
    let lost = edge
        .api(
            "PUT",
            &path,
            Some(config_for(&[("web", &o)])),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(lost.status, StatusCode::PRECONDITION_FAILED);
    let now = edge.api("GET", &path, None, &[]).await;
    assert_eq!(now.json()["comment"], "changed");
    assert_eq!(now.header("etag"), Some(new_etag.as_str()));

    // An invalid config with the right ETag is refused and changes nothing.
    let mut bad = changed.clone();
    bad["default_cache_behavior"]["target_origin_id"] = json!("nowhere");
    let invalid = edge
        .api("PUT", &path, Some(bad), &[("if-match", &new_etag)])
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(invalid.error_code(), "InvalidArgument");
    assert!(
        invalid.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("default_cache_behavior.target_origin_id")
    );
    assert_eq!(
        edge.api("GET", &path, None, &[]).await.header("etag"),
        Some(new_etag.as_str())
    );
}

#[tokio::test]
async fn an_alias_belongs_to_one_distribution() {
    let edge = Edge::start().await;
    let o = origin().await;
    let mut first = config_for(&[("web", &o)]);
    first["aliases"] = json!(["www.example.com", "*.example.org"]);
    let a = edge.create(first).await;

    let mut second = config_for(&[("web", &o)]);
    second["aliases"] = json!(["shop.example.net", "www.example.com"]);
    let conflict = edge
        .api("POST", "/v1/distributions", Some(second), &[])
        .await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.error_code(), "CNAMEAlreadyExists");
    let list = edge.api("GET", "/v1/distributions", None, &[]).await.json();
    assert_eq!(list["quantity"], 1, "a refused create stored something");

    // The alias a refused create asked for is still free.
    let mut third = config_for(&[("web", &o)]);
    third["aliases"] = json!(["shop.example.net"]);
    let b = edge.create(third).await;
    let b_id = b["id"].as_str().unwrap();

    // A PUT taking another distribution's wildcard alias is refused too.
    let mut grab = config_for(&[("web", &o)]);
    grab["aliases"] = json!(["shop.example.net", "*.example.org"]);
    let path = format!("/v1/distributions/{b_id}/config");
    let refused = edge
        .api(
            "PUT",
            &path,
            Some(grab),
            &[("if-match", b["etag"].as_str().unwrap())],
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.error_code(), "CNAMEAlreadyExists");
    assert!(refused.text().contains(a["id"].as_str().unwrap()));
    let now = edge.api("GET", &path, None, &[]).await;
    assert_eq!(now.json()["aliases"], json!(["shop.example.net"]));
    assert_eq!(now.header("etag"), b["etag"].as_str());

    // Dropping an alias frees it for others.
    let mut drop_alias = config_for(&[("web", &o)]);
    drop_alias["aliases"] = json!([]);
    let freed = edge
        .api(
            "PUT",
            &path,
            Some(drop_alias),
            &[("if-match", b["etag"].as_str().unwrap())],
        )
        .await;
    assert_eq!(freed.status, StatusCode::OK);
    let mut fourth = config_for(&[("web", &o)]);
    fourth["aliases"] = json!(["shop.example.net"]);
    edge.create(fourth).await;
}

#[tokio::test]
async fn delete_only_when_disabled_and_with_the_etag() {
    let edge = Edge::start().await;
    let o = origin().await;
    let mut config = config_for(&[("web", &o)]);
    config["aliases"] = json!(["gone.example.com"]);
    let created = edge.create(config.clone()).await;
    let id = created["id"].as_str().unwrap();
    let etag = created["etag"].as_str().unwrap();
    let path = format!("/v1/distributions/{id}");

    let enabled = edge.api("DELETE", &path, None, &[("if-match", etag)]).await;
    assert_eq!(enabled.status, StatusCode::CONFLICT);
    assert_eq!(enabled.error_code(), "DistributionNotDisabled");

    config["enabled"] = json!(false);
    let disabled = edge
        .api(
            "PUT",
            &format!("{path}/config"),
            Some(config),
            &[("if-match", etag)],
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK);
    let new_etag = disabled.header("etag").unwrap();

    let no_etag = edge.api("DELETE", &path, None, &[]).await;
    assert_eq!(no_etag.error_code(), "InvalidIfMatchVersion");
    let stale = edge.api("DELETE", &path, None, &[("if-match", etag)]).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        edge.api("GET", &path, None, &[]).await.status,
        StatusCode::OK
    );

    let deleted = edge
        .api("DELETE", &path, None, &[("if-match", new_etag)])
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        edge.api("GET", &path, None, &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        edge.get("gone.example.com", "/").await.status,
        StatusCode::MISDIRECTED_REQUEST
    );
    // Its alias is free again.
    let mut again = config_for(&[("web", &o)]);
    again["aliases"] = json!(["gone.example.com"]);
    edge.create(again).await;
}

#[tokio::test]
async fn bad_configs_are_refused_with_the_field_named() {
    let edge = Edge::start().await;
    let o = origin().await;
    let base = config_for(&[("web", &o)]);
    let mut cases = Vec::new();
    let mut unknown = base.clone();
    unknown["colour"] = json!("blue");
    cases.push((unknown, "colour"));
    let mut no_origins = base.clone();
    no_origins["origins"] = json!([]);
    cases.push((no_origins, "origins"));
    let mut bad_target = base.clone();
    bad_target["default_cache_behavior"]["target_origin_id"] = json!("nope");
    cases.push((bad_target, "default_cache_behavior.target_origin_id"));
    let mut bad_alias = base.clone();
    bad_alias["aliases"] = json!(["not a host"]);
    cases.push((bad_alias, "aliases[0]"));
    let mut dup = base.clone();
    dup["origins"] = json!([base["origins"][0], base["origins"][0]]);
    cases.push((dup, "origins[1].id"));
    let mut ttl = base.clone();
    ttl["default_cache_behavior"]["min_ttl"] = json!(100);
    ttl["default_cache_behavior"]["max_ttl"] = json!(10);
    cases.push((ttl, "default_cache_behavior.min_ttl"));
    let mut own_domain = base.clone();
    own_domain["aliases"] = json!(["x.edge.internal"]);
    cases.push((own_domain, "aliases[0]"));
    let mut hook = base.clone();
    hook["default_cache_behavior"]["hooks"] = json!({"viewer_request": {"module": "nothing"}});
    cases.push((hook, "default_cache_behavior.hooks.viewer_request.module"));
    let mut missing = base.clone();
    missing
        .as_object_mut()
        .unwrap()
        .remove("default_cache_behavior");
    cases.push((missing, "default_cache_behavior"));

    for (config, field) in cases {
        let got = edge
            .api("POST", "/v1/distributions", Some(config), &[])
            .await;
        assert_eq!(
            got.status,
            StatusCode::BAD_REQUEST,
            "{field}: {}",
            got.text()
        );
        assert_eq!(got.error_code(), "InvalidArgument", "{field}");
        let message = got.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(field), "expected {field:?} in {message:?}");
    }

    let malformed = edge
        .api_raw(
            "POST",
            "/v1/distributions",
            b"{\"origins\": [".to_vec(),
            &[],
            Some(TOKEN),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.error_code(), "MalformedInput");

    let list = edge.api("GET", "/v1/distributions", None, &[]).await.json();
    assert_eq!(list["quantity"], 0, "a refused config was stored");
}

#[tokio::test]
async fn the_api_needs_the_bearer_token() {
    let edge = Edge::start().await;
    let none = edge
        .api_raw("GET", "/v1/distributions", Vec::new(), &[], None)
        .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.error_code(), "AccessDenied");
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    let wrong = edge
        .api_raw(
            "POST",
            "/v1/distributions",
            b"{}".to_vec(),
            &[],
            Some("nope"),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let list = edge.api("GET", "/v1/distributions", None, &[]).await;
    assert_eq!(list.json()["quantity"], 0);

    let unknown = edge.api("GET", "/v1/nothing", None, &[]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error_code(), "NotFound");
    let wrong_method = edge.api("PATCH", "/v1/distributions", None, &[]).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.header("allow"), Some("GET, POST"));

    let health = edge.api_raw("GET", "/healthz", Vec::new(), &[], None).await;
    assert_eq!(health.status, StatusCode::OK);
    let health: Health = health.view();
    assert_eq!(
        (health.status.as_str(), health.store.as_str()),
        ("ok", "connected")
    );
}

#[tokio::test]
async fn a_generated_token_is_saved_under_the_data_dir() {
    let edge = Edge::start_with(|o| o.token = None).await;
    let token_path = edge.dir.path().join("token");
    let token = std::fs::read_to_string(&token_path).unwrap();
    assert_eq!(token.len(), 64);
    let ok = edge
        .api_raw("GET", "/v1/distributions", Vec::new(), &[], Some(&token))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let refused = edge
        .api_raw("GET", "/v1/distributions", Vec::new(), &[], Some(TOKEN))
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    // A restart reuses the saved token.
    let dir = edge.stop().await;
    let again = Edge::start_in(dir, |o| o.token = None).await;
    let ok = again
        .api_raw("GET", "/v1/distributions", Vec::new(), &[], Some(&token))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn a_restarted_host_serves_exactly_what_was_acknowledged() {
    let edge = Edge::start().await;
    let o = Origin::fixed("persisted", &[("cache-control", "max-age=60")]).await;
    let mut config = config_for(&[("web", &o)]);
    config["aliases"] = json!(["keep.example.com"]);
    let created = edge.create(config.clone()).await;
    let id = created["id"].as_str().unwrap().to_owned();
    config["comment"] = json!("second version");
    let put = edge
        .api(
            "PUT",
            &format!("/v1/distributions/{id}/config"),
            Some(config),
            &[("if-match", created["etag"].as_str().unwrap())],
        )
        .await;
    let etag = put.header("etag").unwrap().to_owned();
    let before = edge
        .api("GET", &format!("/v1/distributions/{id}"), None, &[])
        .await
        .json();

    let dir = edge.stop().await;
    let edge = Edge::start_in(dir, |_| {}).await;
    let after = edge
        .api("GET", &format!("/v1/distributions/{id}"), None, &[])
        .await;
    assert_eq!(after.header("etag"), Some(etag.as_str()));
    assert_eq!(after.json(), before);
    assert_eq!(after.json()["config"]["comment"], "second version");
    let served = edge.get("keep.example.com", "/").await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.text(), "persisted");

    // ETags keep increasing after a restart: a pre-restart ETag stays stale.
    let mut config = config_for(&[("web", &o)]);
    config["aliases"] = json!(["keep.example.com"]);
    let stale = edge
        .api(
            "PUT",
            &format!("/v1/distributions/{id}/config"),
            Some(config.clone()),
            &[("if-match", created["etag"].as_str().unwrap())],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let fresh = edge
        .api(
            "PUT",
            &format!("/v1/distributions/{id}/config"),
            Some(config),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert_ne!(fresh.header("etag"), Some(etag.as_str()));
}

#[tokio::test]
async fn metrics_count_what_was_served() {
    let edge = Edge::start().await;
    let o = origin().await;
    let mut config = config_for(&[("web", &o)]);
    config["aliases"] = json!(["m.example.com"]);
    edge.create(config).await;
    edge.get("m.example.com", "/").await;
    edge.get("m.example.com", "/").await;
    edge.get("unknown.example.com", "/").await;
    let text = edge
        .api_raw("GET", "/metrics", Vec::new(), &[], None)
        .await
        .text();
    assert!(
        text.contains("edge_requests_total{cache=\"Hit\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("edge_requests_total{cache=\"Miss\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("edge_requests_total{cache=\"Error\"} 1"),
        "{text}"
    );
    assert!(text.contains("edge_origin_requests_total 1"), "{text}");
    assert!(text.contains("edge_cache_objects"), "{text}");
}
