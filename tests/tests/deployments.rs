//! Blue/green and canary deployments end to end: alias moves, staging copies,
//! continuous-deployment policies, promote, the automatic gate, invalidations,
//! and the field's blue/green scenario done four ways without a failed viewer.

use std::sync::Arc;
use std::time::Duration;

use edge_e2e::examples::{BLUEGREEN, MISBEHAVE};
use edge_e2e::{Edge, Got, Load, Origin, Reply, json, set_cookies};
use http::StatusCode;
use serde_json::Value;

/// An origin answering its name, cacheable for a minute.
async fn named(name: &'static str) -> Origin {
    Origin::start(move |_| Reply::ok(name).header("cache-control", "max-age=60")).await
}

/// A config with aliases and one origin `web`.
fn site(aliases: &[&str], origin: &Origin) -> Value {
    json!({
        "aliases": aliases,
        "origins": [{"id": "web", "domain_name": origin.domain(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "web"},
    })
}

fn etag(got: &Got) -> String {
    got.header("etag").expect("an ETag").to_owned()
}

async fn get_json(edge: &Edge, path: &str) -> (Value, String) {
    let got = edge.api("GET", path, None, &[]).await;
    assert_eq!(got.status, StatusCode::OK, "{path}: {}", got.text());
    (got.json(), etag(&got))
}

/// Copies `id` as a staging distribution and points it at `origin`.
async fn staging_of(edge: &Edge, id: &str, origin: &Origin) -> String {
    edge.staging_copy(id, site(&[], origin)).await
}

/// Creates a policy; returns its id and ETag.
async fn policy(edge: &Edge, body: Value) -> (String, String) {
    let got = edge
        .api(
            "POST",
            "/v1/continuous-deployment-policies",
            Some(body),
            &[],
        )
        .await;
    assert_eq!(got.status, StatusCode::CREATED, "{}", got.text());
    (
        got.json()["id"].as_str().expect("an id").to_owned(),
        etag(&got),
    )
}

/// Attaches `policy` to distribution `id` (config `config`).
async fn attach(edge: &Edge, id: &str, mut config: Value, policy: &str) {
    let (_, tag) = get_json(edge, &format!("/v1/distributions/{id}/config")).await;
    config["continuous_deployment_policy_id"] = json!(policy);
    let got = edge
        .api(
            "PUT",
            &format!("/v1/distributions/{id}/config"),
            Some(config),
            &[("if-match", &tag)],
        )
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
}

/// A continuous deployment: the staging copy, the policy and its ETag.
struct Canary {
    staging: String,
    policy: String,
    policy_etag: String,
}

/// A primary on `alias` fetching from `p`, a staging copy fetching from `s`,
/// and a policy with `traffic` (and the `auto` gate) attached to the primary.
async fn canary(
    edge: &Edge,
    alias: &str,
    (p, s): (&Origin, &Origin),
    traffic: Value,
    auto: Option<Value>,
) -> Canary {
    let primary = edge.create(site(&[alias], p)).await;
    let primary = primary["id"].as_str().expect("an id").to_owned();
    let staging = staging_of(edge, &primary, s).await;
    let mut body = json!({"staging_distribution_id": staging, "traffic": traffic});
    if let Some(auto) = auto {
        body["auto"] = auto;
    }
    let (policy, policy_etag) = policy(edge, body).await;
    attach(edge, &primary, site(&[alias], p), &policy).await;
    Canary {
        staging,
        policy,
        policy_etag,
    }
}

#[tokio::test]
async fn alias_moves_are_atomic_under_load_and_persist() {
    let (a, b) = (named("A").await, named("B").await);
    let edge = Edge::start().await;
    let da = edge.create(site(&["www.shop.test"], &a)).await;
    let db = edge.create(site(&["old.shop.test"], &b)).await;
    let (ida, idb) = (
        da["id"].as_str().unwrap().to_owned(),
        db["id"].as_str().unwrap().to_owned(),
    );

    // One move rewrites both distributions: both ETags change.
    let (_, a_before) = get_json(&edge, &format!("/v1/distributions/{ida}")).await;
    let (_, b_before) = get_json(&edge, &format!("/v1/distributions/{idb}")).await;
    let moved = edge
        .api(
            "POST",
            &format!("/v1/distributions/{idb}/associate-alias"),
            Some(json!({"alias": "www.shop.test"})),
            &[],
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text());
    assert_eq!(
        moved.json()["config"]["aliases"],
        json!(["old.shop.test", "www.shop.test"])
    );
    let (a_json, a_after) = get_json(&edge, &format!("/v1/distributions/{ida}")).await;
    let (_, b_after) = get_json(&edge, &format!("/v1/distributions/{idb}")).await;
    assert_ne!(a_before, a_after);
    assert_ne!(b_before, b_after);
    assert_eq!(a_json["config"]["aliases"], json!([]));
    assert_eq!(edge.get("www.shop.test", "/").await.text(), "B");

    // 200 moves back and forth while a viewer loops on the alias: every
    // response comes from one of the two, none fails, none is a 421.
    let load = Load::start(&edge, "www.shop.test", "/page");
    for i in 0..200 {
        let to = if i % 2 == 0 { &ida } else { &idb };
        let got = edge
            .api(
                "POST",
                &format!("/v1/distributions/{to}/associate-alias"),
                Some(json!({"alias": "www.shop.test"})),
                &[],
            )
            .await;
        assert_eq!(got.status, StatusCode::OK, "move {i}: {}", got.text());
        tokio::task::yield_now().await;
    }
    let report = load.stop().await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(
        report.total > 50,
        "only {} viewer requests ran",
        report.total
    );
    assert_eq!(
        report.bodies.keys().cloned().collect::<Vec<_>>(),
        ["A", "B"],
        "{:?}",
        report.bodies
    );
    // The last move (the 200th) went to B.
    assert_eq!(edge.get("www.shop.test", "/after").await.text(), "B");

    // Moving to where it already is changes nothing; bad moves are refused.
    let (_, before) = get_json(&edge, &format!("/v1/distributions/{idb}")).await;
    let same = edge
        .api(
            "POST",
            &format!("/v1/distributions/{idb}/associate-alias"),
            Some(json!({"alias": "www.shop.test"})),
            &[],
        )
        .await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(etag(&same), before);
    for (target, body, status, code) in [
        (
            idb.as_str(),
            json!({"alias": "Bad Alias"}),
            400,
            "InvalidArgument",
        ),
        (
            "ENOSUCH",
            json!({"alias": "x.shop.test"}),
            404,
            "NoSuchDistribution",
        ),
        (
            idb.as_str(),
            json!({"aliases": ["x.shop.test"]}),
            400,
            "InvalidArgument",
        ),
    ] {
        let got = edge
            .api(
                "POST",
                &format!("/v1/distributions/{target}/associate-alias"),
                Some(body),
                &[],
            )
            .await;
        assert_eq!(got.status.as_u16(), status, "{}", got.text());
        assert_eq!(got.error_code(), code);
    }
    // A new alias nobody holds is simply added.
    let fresh = edge
        .api(
            "POST",
            &format!("/v1/distributions/{ida}/associate-alias"),
            Some(json!({"alias": "*.new.test"})),
            &[],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.text());
    assert_eq!(edge.get("x.new.test", "/").await.text(), "A");

    // A restart serves exactly the last moves.
    let dir = edge.stop().await;
    let edge = Edge::start_in(dir, |_| {}).await;
    assert_eq!(edge.get("www.shop.test", "/").await.text(), "B");
    assert_eq!(edge.get("x.new.test", "/").await.text(), "A");
}

#[tokio::test]
async fn copies_make_staging_distributions() {
    let (p, s) = (named("P").await, named("S").await);
    let edge = Edge::start().await;
    let primary = edge.create(site(&["www.c.test"], &p)).await;
    let id = primary["id"].as_str().unwrap();

    let stale = edge
        .api(
            "POST",
            &format!("/v1/distributions/{id}/copy"),
            Some(json!({"staging": true})),
            &[("if-match", "E999")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let got = edge
        .api(
            "POST",
            &format!("/v1/distributions/{id}/copy"),
            Some(json!({"staging": true, "comment": "next"})),
            &[("if-match", primary["etag"].as_str().unwrap())],
        )
        .await;
    assert_eq!(got.status, StatusCode::CREATED, "{}", got.text());
    let copy = got.json();
    let sid = copy["id"].as_str().unwrap();
    assert_ne!(sid, id);
    assert_eq!(copy["staging"], true);
    assert_eq!(copy["config"]["aliases"], json!([]));
    assert_eq!(copy["config"]["comment"], "next");
    assert_eq!(copy["config"]["origins"], primary["config"]["origins"]);
    assert_eq!(
        got.header("location").unwrap(),
        format!("/v1/distributions/{sid}")
    );
    // It answers on its own domain name, for testing it before any traffic.
    let domain = copy["domain_name"].as_str().unwrap();
    assert_eq!(edge.get(domain, "/").await.text(), "P");
    // A staging distribution takes no aliases.
    let tag = etag(&got);
    let refused = edge
        .api(
            "PUT",
            &format!("/v1/distributions/{sid}/config"),
            Some(site(&["s.c.test"], &s)),
            &[("if-match", &tag)],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    assert!(refused.text().contains("staging"), "{}", refused.text());
    let refused = edge
        .api(
            "POST",
            &format!("/v1/distributions/{sid}/associate-alias"),
            Some(json!({"alias": "s.c.test"})),
            &[],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    // A plain copy is a primary without aliases.
    let plain = edge
        .api("POST", &format!("/v1/distributions/{id}/copy"), None, &[])
        .await;
    assert_eq!(plain.status, StatusCode::CREATED, "{}", plain.text());
    assert_eq!(plain.json()["staging"], false);
    let list = edge.api("GET", "/v1/distributions", None, &[]).await.json();
    assert_eq!(list["quantity"], 3);
}

#[tokio::test]
async fn policies_are_validated_and_guarded_by_etags() {
    let (p, s) = (named("P").await, named("S").await);
    let edge = Edge::start().await;
    let primary = edge.create(site(&["www.p.test"], &p)).await;
    let pid = primary["id"].as_str().unwrap().to_owned();
    let staging = staging_of(&edge, &pid, &s).await;

    let bad = [
        (
            json!({"staging_distribution_id": staging, "traffic": {"type": "weight", "weight": 2}}),
            400,
            "InvalidArgument",
        ),
        (
            json!({"staging_distribution_id": pid, "traffic": {"type": "weight", "weight": 0.1}}),
            400,
            "InvalidArgument",
        ),
        (
            json!({"staging_distribution_id": "ENOSUCH", "traffic": {"type": "weight", "weight": 0.1}}),
            400,
            "InvalidArgument",
        ),
        (
            json!({"staging_distribution_id": staging, "traffic": {"type": "weight", "weight": 0.1}, "extra": 1}),
            400,
            "InvalidArgument",
        ),
    ];
    for (body, status, code) in bad {
        let got = edge
            .api(
                "POST",
                "/v1/continuous-deployment-policies",
                Some(body.clone()),
                &[],
            )
            .await;
        assert_eq!(got.status.as_u16(), status, "{body}: {}", got.text());
        assert_eq!(got.error_code(), code, "{body}");
    }
    let (policy_id, tag) = policy(
        &edge,
        json!({"staging_distribution_id": staging, "traffic": {"type": "weight", "weight": 0.0001}}),
    )
    .await;
    // One staging distribution, one policy.
    let twice = edge
        .api("POST", "/v1/continuous-deployment-policies", Some(json!({"staging_distribution_id": staging, "traffic": {"type": "weight", "weight": 0.1}})), &[])
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert_eq!(twice.error_code(), "StagingDistributionInUse");

    let path = format!("/v1/continuous-deployment-policies/{policy_id}");
    let (got, get_tag) = get_json(&edge, &path).await;
    assert_eq!(get_tag, tag);
    assert_eq!(got["config"]["traffic"]["weight"], 0.0001);
    assert_eq!(got["status"]["state"], "Active");
    let update = json!({"staging_distribution_id": staging, "traffic": {"type": "header", "header": "x-canary", "value": "yes"}});
    let missing = edge.api("PUT", &path, Some(update.clone()), &[]).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.error_code(), "InvalidIfMatchVersion");
    let stale = edge
        .api("PUT", &path, Some(update.clone()), &[("if-match", "E1")])
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let ok = edge
        .api("PUT", &path, Some(update), &[("if-match", &tag)])
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_ne!(etag(&ok), tag);
    let list = edge
        .api("GET", "/v1/continuous-deployment-policies", None, &[])
        .await
        .json();
    assert_eq!(list["quantity"], 1);

    // Attached, the policy and its staging distribution cannot be deleted.
    attach(&edge, &pid, site(&["www.p.test"], &p), &policy_id).await;
    let in_use = edge
        .api("DELETE", &path, None, &[("if-match", &etag(&ok))])
        .await;
    assert_eq!(in_use.status, StatusCode::CONFLICT);
    assert_eq!(in_use.error_code(), "ContinuousDeploymentPolicyInUse");
    let (_, stag) = get_json(&edge, &format!("/v1/distributions/{staging}")).await;
    let mut disabled = site(&[], &s);
    disabled["enabled"] = json!(false);
    let put = edge
        .api(
            "PUT",
            &format!("/v1/distributions/{staging}/config"),
            Some(disabled),
            &[("if-match", &stag)],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK);
    let del = edge
        .api(
            "DELETE",
            &format!("/v1/distributions/{staging}"),
            None,
            &[("if-match", &etag(&put))],
        )
        .await;
    assert_eq!(del.status, StatusCode::CONFLICT);
    assert_eq!(del.error_code(), "StagingDistributionInUse");
    // A second primary cannot take the same policy.
    let mut other = site(&["other.p.test"], &p);
    other["continuous_deployment_policy_id"] = json!(policy_id);
    let got = edge
        .api("POST", "/v1/distributions", Some(other), &[])
        .await;
    assert_eq!(got.status, StatusCode::CONFLICT);
    assert_eq!(got.error_code(), "ContinuousDeploymentPolicyInUse");
}

#[tokio::test]
async fn a_weighted_split_is_accurate_and_sticky() {
    let (p, s) = (named("P").await, named("S").await);
    let edge = Arc::new(Edge::start().await);
    canary(
        &edge,
        "www.w.test",
        (&p, &s),
        json!({"type": "weight", "weight": 0.1, "session_stickiness": {"idle_ttl": 300, "max_ttl": 600}}),
        None,
    )
    .await;

    // 20,000 fresh viewers: staging's share within one point of 10 %.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let edge = edge.clone();
        tasks.push(tokio::spawn(async move {
            let mut staging = 0usize;
            let mut cookies = Vec::new();
            for _ in 0..2500 {
                let got = edge.get("www.w.test", "/").await;
                assert_eq!(got.status, StatusCode::OK);
                if got.text() == "S" {
                    staging += 1;
                }
                if cookies.len() < 20 {
                    cookies.push((got.text(), set_cookies(&got)));
                }
            }
            (staging, cookies)
        }));
    }
    let mut on_staging = 0;
    let mut viewers = Vec::new();
    for t in tasks {
        let (n, cookies) = t.await.unwrap();
        on_staging += n;
        viewers.extend(cookies);
    }
    let share = on_staging as f64 / 20_000.0;
    assert!(
        (share - 0.1).abs() <= 0.01,
        "staging got {:.2} %",
        share * 100.0
    );

    // Every viewer was told its arm, and keeps it for as long as it comes back.
    let p_cookie = viewers
        .iter()
        .find(|(body, _)| body == "P")
        .expect("a primary viewer");
    let s_cookie = viewers
        .iter()
        .find(|(body, _)| body == "S")
        .expect("a staging viewer")
        .clone();
    for (body, cookies) in [p_cookie.clone(), s_cookie] {
        assert_eq!(cookies.len(), 1, "{cookies:?}");
        assert!(cookies[0].starts_with("edge-cd="), "{cookies:?}");
        for _ in 0..50 {
            let got = edge
                .request(
                    "GET",
                    "www.w.test",
                    "/",
                    &[("cookie", &format!("a=1; {}", cookies[0]))],
                )
                .await;
            assert_eq!(got.text(), body, "a sticky viewer switched arm");
            assert_eq!(
                set_cookies(&got),
                cookies,
                "the cookie is renewed as it was"
            );
        }
    }
    // The sticky cookie never reaches an origin; the viewer's own cookies do
    // (on a request that is not cached).
    let post = edge
        .request(
            "POST",
            "www.w.test",
            "/form",
            &[("cookie", &format!("a=1; {}", p_cookie.1[0]))],
        )
        .await;
    assert_eq!(post.status, StatusCode::OK);
    let seen = p.last();
    assert_eq!(seen.headers.get("cookie").unwrap(), "a=1");
}

#[tokio::test]
async fn a_header_policy_and_separate_caches_per_arm() {
    let (p, s) = (named("P").await, named("S").await);
    let edge = Edge::start().await;
    let Canary { staging, .. } = canary(
        &edge,
        "www.h.test",
        (&p, &s),
        json!({"type": "header", "header": "x-edge-staging", "value": "true"}),
        None,
    )
    .await;
    for round in 0..2 {
        let plain = edge.get("www.h.test", "/same").await;
        let staged = edge
            .request("GET", "www.h.test", "/same", &[("x-edge-staging", "true")])
            .await;
        let other = edge
            .request("GET", "www.h.test", "/same", &[("x-edge-staging", "false")])
            .await;
        assert_eq!(
            (plain.text(), staged.text(), other.text()),
            ("P".into(), "S".into(), "P".into())
        );
        // One path, two arms, two cached objects: neither serves the other's.
        let expected = if round == 0 { "Miss" } else { "Hit" };
        assert_eq!(plain.cache(), expected);
        assert_eq!(staged.cache(), expected);
        assert!(
            set_cookies(&staged).is_empty(),
            "header policies set no cookie"
        );
    }
    assert_eq!((p.hits(), s.hits()), (1, 1));
    // Hooks see the arm in their context.
    edge.upload_hook("misbehave", MISBEHAVE).await;
    let (_, tag) = get_json(&edge, &format!("/v1/distributions/{staging}/config")).await;
    let mut config = site(&[], &s);
    config["default_cache_behavior"]["hooks"] =
        json!({"viewer_request": {"module": "misbehave", "config": {"viewer_request": "context"}}});
    let put = edge
        .api(
            "PUT",
            &format!("/v1/distributions/{staging}/config"),
            Some(config),
            &[("if-match", &tag)],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let ctx = edge
        .request("GET", "www.h.test", "/", &[("x-edge-staging", "true")])
        .await
        .text();
    assert!(ctx.contains("arm=Arm::Staging"), "{ctx}");
    assert!(ctx.contains(&format!("distribution={staging}")), "{ctx}");
}

#[tokio::test]
async fn promote_copies_staging_onto_primary_with_both_etags() {
    let (p, s) = (named("P").await, named("S").await);
    let edge = Edge::start().await;
    let primary = edge.create(site(&["www.pr.test"], &p)).await;
    let pid = primary["id"].as_str().unwrap().to_owned();
    let staging = staging_of(&edge, &pid, &s).await;
    let (policy_id, _) = policy(
        &edge,
        json!({"staging_distribution_id": staging, "traffic": {"type": "weight", "weight": 0.0}}),
    )
    .await;
    attach(&edge, &pid, site(&["www.pr.test"], &p), &policy_id).await;
    let (_, ptag) = get_json(&edge, &format!("/v1/distributions/{pid}")).await;
    let (_, stag) = get_json(&edge, &format!("/v1/distributions/{staging}")).await;
    let path = format!("/v1/distributions/{pid}/promote");
    let body = json!({"staging_distribution_id": staging});
    for (if_match, status, code) in [
        (None, 400, "InvalidIfMatchVersion"),
        (Some(ptag.clone()), 400, "InvalidIfMatchVersion"),
        (Some(format!("E999, {stag}")), 412, "PreconditionFailed"),
        (Some(format!("{ptag}, E999")), 412, "PreconditionFailed"),
    ] {
        let headers: Vec<(&str, &str)> =
            if_match.iter().map(|v| ("if-match", v.as_str())).collect();
        let got = edge.api("POST", &path, Some(body.clone()), &headers).await;
        assert_eq!(got.status.as_u16(), status, "{if_match:?}: {}", got.text());
        assert_eq!(got.error_code(), code);
    }
    assert_eq!(edge.get("www.pr.test", "/").await.text(), "P");
    let ok = edge
        .api(
            "POST",
            &path,
            Some(body),
            &[("if-match", &format!("{ptag}, {stag}"))],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let promoted = ok.json();
    assert_ne!(etag(&ok), ptag);
    assert_eq!(promoted["config"]["aliases"], json!(["www.pr.test"]));
    assert_eq!(promoted["config"]["origins"][0]["domain_name"], s.domain());
    assert_eq!(edge.get("www.pr.test", "/fresh").await.text(), "S");
    // Promoting onto a staging distribution, or from a primary, is refused.
    let (_, ptag) = get_json(&edge, &format!("/v1/distributions/{pid}")).await;
    let got = edge
        .api(
            "POST",
            &format!("/v1/distributions/{staging}/promote"),
            Some(json!({"staging_distribution_id": pid})),
            &[("if-match", &format!("{stag}, {ptag}"))],
        )
        .await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST, "{}", got.text());
}

/// Promote takes only the staging distribution of the primary's own policy:
/// another primary's staging, or a staging copy no policy names, is refused
/// with 409 and production keeps its config.
#[tokio::test]
async fn promote_refuses_a_staging_distribution_that_is_not_the_primarys() {
    let (p, q, foreign) = (named("P").await, named("Q").await, named("FOREIGN").await);
    let edge = Edge::start().await;
    let primary = edge.create(site(&["www.mine.test"], &p)).await;
    let pid = primary["id"].as_str().unwrap().to_owned();
    let other = edge.create(site(&["www.theirs.test"], &q)).await;
    let oid = other["id"].as_str().unwrap().to_owned();
    // The other primary's staging, attached to the other primary's policy.
    let theirs = staging_of(&edge, &oid, &foreign).await;
    let (their_policy, _) = policy(
        &edge,
        json!({"staging_distribution_id": theirs, "traffic": {"type": "weight", "weight": 0.0}}),
    )
    .await;
    attach(&edge, &oid, site(&["www.theirs.test"], &q), &their_policy).await;
    // A staging copy of this primary that no policy names.
    let loose = staging_of(&edge, &pid, &foreign).await;
    for (staging, says) in [
        (&theirs, oid.as_str()),
        (&loose, "no continuous-deployment policy"),
    ] {
        let (_, ptag) = get_json(&edge, &format!("/v1/distributions/{pid}")).await;
        let (_, stag) = get_json(&edge, &format!("/v1/distributions/{staging}")).await;
        let got = edge
            .api(
                "POST",
                &format!("/v1/distributions/{pid}/promote"),
                Some(json!({"staging_distribution_id": staging})),
                &[("if-match", &format!("{ptag}, {stag}"))],
            )
            .await;
        assert_eq!(got.status, StatusCode::CONFLICT, "{}", got.text());
        assert_eq!(got.error_code(), "IllegalUpdate");
        let message = got.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(says), "{message}");
        let (_, after) = get_json(&edge, &format!("/v1/distributions/{pid}")).await;
        assert_eq!(after, ptag, "nothing changed");
        assert_eq!(edge.get("www.mine.test", "/").await.text(), "P");
    }
}

#[tokio::test]
async fn the_automatic_gate_rolls_a_failing_staging_back() {
    let p = named("P").await;
    let broken = Origin::start(|_| Reply::ok("broken").status(500)).await;
    let edge = Edge::start().await;
    let Canary {
        policy: policy_id,
        policy_etag: tag,
        ..
    } = canary(
        &edge,
        "www.g.test",
        (&p, &broken),
        json!({"type": "weight", "weight": 0.5}),
        Some(
            json!({"max_error_rate": 0.02, "min_requests": 50, "window_s": 60, "then": "rollback"}),
        ),
    )
    .await;
    let mut failed = 0;
    for i in 0..200 {
        if edge.get("www.g.test", &format!("/{i}")).await.status != StatusCode::OK {
            failed += 1;
        }
    }
    assert!(
        failed > 50,
        "the broken staging arm served only {failed} of 200"
    );
    // No operator action: the gate sees the rate and sets the weight to 0.
    let path = format!("/v1/continuous-deployment-policies/{policy_id}");
    let mut rolled = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (got, _) = get_json(&edge, &path).await;
        if got["status"]["state"] == "RolledBack" {
            rolled = got;
            break;
        }
    }
    assert_eq!(
        rolled["status"]["state"], "RolledBack",
        "the gate did not trip"
    );
    assert_eq!(rolled["config"]["traffic"]["weight"], 0.0);
    assert!(
        rolled["status"]["reason"]
            .as_str()
            .unwrap()
            .contains("5xx rate"),
        "{rolled}"
    );
    assert_ne!(rolled["etag"], tag.as_str());
    for i in 0..100 {
        let got = edge.get("www.g.test", &format!("/after/{i}")).await;
        assert_eq!((got.status, got.text()), (StatusCode::OK, "P".to_owned()));
    }
    let metrics = edge.api("GET", "/metrics", None, &[]).await.text();
    assert!(metrics.contains("edge_staging_errors_total"), "{metrics}");
}

#[tokio::test]
async fn invalidations_take_effect_before_the_answer_and_are_kept() {
    let o = named("O").await;
    let edge = Edge::start().await;
    let d = edge.create(site(&["www.i.test"], &o)).await;
    let id = d["id"].as_str().unwrap().to_owned();
    for path in ["/img/a.png", "/img/b.png", "/index.html"] {
        assert_eq!(edge.get("www.i.test", path).await.cache(), "Miss");
        assert_eq!(edge.get("www.i.test", path).await.cache(), "Hit");
    }
    let path = format!("/v1/distributions/{id}/invalidations");
    let got = edge
        .api("POST", &path, Some(json!({"paths": ["/img/*"]})), &[])
        .await;
    assert_eq!(got.status, StatusCode::CREATED, "{}", got.text());
    let inv = got.json();
    assert_eq!(inv["status"], "Completed");
    assert_eq!(inv["dropped"], 2);
    let inv_id = inv["id"].as_str().unwrap().to_owned();
    assert_eq!(got.header("location").unwrap(), format!("{path}/{inv_id}"));
    assert_eq!(edge.get("www.i.test", "/img/a.png").await.cache(), "Miss");
    assert_eq!(edge.get("www.i.test", "/img/b.png").await.cache(), "Miss");
    assert_eq!(edge.get("www.i.test", "/index.html").await.cache(), "Hit");
    let exact = edge
        .api("POST", &path, Some(json!({"paths": ["/index.html"]})), &[])
        .await;
    assert_eq!(exact.status, StatusCode::CREATED);
    assert_eq!(edge.get("www.i.test", "/index.html").await.cache(), "Miss");

    for (body, status) in [
        (json!({"paths": []}), 400),
        (json!({"paths": ["img/*"]}), 400),
        (json!({"paths": ["/a*b"]}), 400),
        (json!({"path": ["/a"]}), 400),
    ] {
        let got = edge.api("POST", &path, Some(body.clone()), &[]).await;
        assert_eq!(got.status.as_u16(), status, "{body}");
    }
    let missing = edge
        .api(
            "POST",
            "/v1/distributions/ENOSUCH/invalidations",
            Some(json!({"paths": ["/"]})),
            &[],
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // The history, newest first, survives a restart.
    let dir = edge.stop().await;
    let edge = Edge::start_in(dir, |_| {}).await;
    let list = edge.api("GET", &path, None, &[]).await.json();
    assert_eq!(list["quantity"], 2);
    assert_eq!(list["items"][0]["paths"], json!(["/index.html"]));
    assert_eq!(list["items"][1]["id"], inv_id.as_str());
    let one = edge
        .api("GET", &format!("{path}/{inv_id}"), None, &[])
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json()["paths"], json!(["/img/*"]));
}

/// Asserts a switch disturbed nobody: no failure, and only the two versions.
fn assert_clean_switch(report: &edge_e2e::LoadReport, from: &str, to: &str) {
    assert!(
        report.failures.is_empty(),
        "failed viewer requests: {:?}",
        report.failures
    );
    assert!(report.total > 0);
    for body in report.bodies.keys() {
        assert!(body == from || body == to, "unexpected body {body:?}");
    }
}

/// After a switch, 100 fresh viewers (no cookies, new paths) all see `to`.
async fn all_fresh_viewers_see(edge: &Edge, host: &str, to: &str) {
    for i in 0..100 {
        let got = edge.get(host, &format!("/fresh/{i}")).await;
        assert_eq!(
            (got.status, got.text()),
            (StatusCode::OK, to.to_owned()),
            "viewer {i}"
        );
    }
}

#[tokio::test]
async fn blue_green_by_swapping_the_origin() {
    let (blue, green) = (named("blue").await, named("green").await);
    let edge = Edge::start().await;
    let config = |target: &str| {
        json!({"aliases": ["www.bg1.test"],
               "origins": [{"id": "blue", "domain_name": blue.domain(), "protocol": "http"},
                           {"id": "green", "domain_name": green.domain(), "protocol": "http"}],
               "default_cache_behavior": {"target_origin_id": target}})
    };
    let d = edge.create(config("blue")).await;
    let load = Load::start(&edge, "www.bg1.test", "/");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let got = edge
        .api(
            "PUT",
            &format!("/v1/distributions/{}/config", d["id"].as_str().unwrap()),
            Some(config("green")),
            &[("if-match", d["etag"].as_str().unwrap())],
        )
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json()["status"], "Deployed");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let report = load.stop().await;
    assert_clean_switch(&report, "blue", "green");
    // The origin is in the cache key: blue's cached "/" is not served to green.
    assert_eq!(edge.get("www.bg1.test", "/").await.text(), "green");
    all_fresh_viewers_see(&edge, "www.bg1.test", "green").await;
}

#[tokio::test]
async fn blue_green_by_cookie_hook_and_kv_weight() {
    let (blue, green) = (named("blue").await, named("green").await);
    let edge = Edge::start().await;
    edge.upload_hook("bluegreen", BLUEGREEN).await;
    edge.kv_put("bluegreen", "green_weight", "0").await;
    let hook = json!({"module": "bluegreen"});
    edge.create(json!({"aliases": ["www.bg2.test"],
        "origins": [{"id": "blue", "domain_name": blue.domain(), "protocol": "http"},
                    {"id": "green", "domain_name": green.domain(), "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": "blue",
            "hooks": {"viewer_request": hook, "viewer_response": hook}}}))
        .await;
    let load = Load::start(&edge, "www.bg2.test", "/");
    tokio::time::sleep(Duration::from_millis(50)).await;
    edge.kv_put("bluegreen", "green_weight", "100").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let report = load.stop().await;
    assert_clean_switch(&report, "blue", "green");
    all_fresh_viewers_see(&edge, "www.bg2.test", "green").await;
}

#[tokio::test]
async fn blue_green_by_moving_the_alias() {
    let (blue, green) = (named("blue").await, named("green").await);
    let edge = Edge::start().await;
    edge.create(site(&["www.bg3.test"], &blue)).await;
    let g = edge.create(site(&[], &green)).await;
    // Green is tried on its own domain name before any viewer reaches it.
    assert_eq!(
        edge.get(g["domain_name"].as_str().unwrap(), "/")
            .await
            .text(),
        "green"
    );
    let load = Load::start(&edge, "www.bg3.test", "/");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let got = edge
        .api(
            "POST",
            &format!(
                "/v1/distributions/{}/associate-alias",
                g["id"].as_str().unwrap()
            ),
            Some(json!({"alias": "www.bg3.test"})),
            &[],
        )
        .await;
    assert_eq!(got.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let report = load.stop().await;
    assert_clean_switch(&report, "blue", "green");
    all_fresh_viewers_see(&edge, "www.bg3.test", "green").await;
}

#[tokio::test]
async fn canary_through_a_policy_then_promote() {
    let (blue, green) = (named("blue").await, named("green").await);
    let edge = Edge::start().await;
    let primary = edge.create(site(&["www.bg4.test"], &blue)).await;
    let pid = primary["id"].as_str().unwrap().to_owned();
    let staging = staging_of(&edge, &pid, &green).await;
    let load = Load::start(&edge, "www.bg4.test", "/");
    let (policy_id, _) = policy(
        &edge,
        json!({"staging_distribution_id": staging, "traffic": {"type": "weight", "weight": 0.2}}),
    )
    .await;
    attach(&edge, &pid, site(&["www.bg4.test"], &blue), &policy_id).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, ptag) = get_json(&edge, &format!("/v1/distributions/{pid}")).await;
    let (_, stag) = get_json(&edge, &format!("/v1/distributions/{staging}")).await;
    let got = edge
        .api(
            "POST",
            &format!("/v1/distributions/{pid}/promote"),
            Some(json!({"staging_distribution_id": staging})),
            &[("if-match", &format!("{ptag}, {stag}"))],
        )
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let report = load.stop().await;
    assert_clean_switch(&report, "blue", "green");
    assert!(
        report.bodies.get("green").is_some_and(|n| *n > 0),
        "the canary served nobody: {:?}",
        report.bodies
    );
    all_fresh_viewers_see(&edge, "www.bg4.test", "green").await;
}

#[tokio::test]
async fn a_sticky_arm_is_drawn_again_after_its_max_ttl() {
    let (p, s) = (named("P").await, named("S").await);
    let edge = Edge::start().await;
    canary(
        &edge,
        "www.t.test",
        (&p, &s),
        json!({"type": "weight", "weight": 0.5, "session_stickiness": {"idle_ttl": 1, "max_ttl": 1}}),
        None,
    )
    .await;
    let first = edge.get("www.t.test", "/").await;
    let cookie = set_cookies(&first).pop().expect("a sticky cookie");
    let assigned = |c: &str| c.split('.').nth(1).unwrap_or("").to_owned();
    let header = first.header("set-cookie").unwrap().to_owned();
    assert!(header.contains("Max-Age=1"), "{header}");
    // Past the max TTL the old cookie is not honoured: a new arm is drawn and
    // a new assignment time given.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = edge
        .request("GET", "www.t.test", "/", &[("cookie", &cookie)])
        .await;
    let renewed = set_cookies(&later).pop().expect("a sticky cookie");
    assert_ne!(
        assigned(&renewed),
        assigned(&cookie),
        "{cookie} -> {renewed}"
    );
}
