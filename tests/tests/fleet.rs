//! A fleet of hosts on one real etcd: changes through any host reach every
//! host, racing writes resolve to one winner, `Deployed` waits for every live
//! host, invalidations reach every cache, and an etcd outage costs viewers
//! nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use edge::control::views::DistributionView;
use edge_e2e::examples::SECURITY_HEADERS;
use edge_e2e::{Edge, Etcd, Got, Load, Origin, Reply, Value, eventually, json};
use http::StatusCode;

/// How long a change may take to reach a host before a test gives up (the
/// benchmark measures the real figure).
const PROPAGATION: Duration = Duration::from_secs(10);

async fn host(etcd: &Etcd, id: &str) -> Edge {
    Edge::start_with(|opts| etcd.configure(opts, id)).await
}

/// An origin answering its name, cacheable for an hour.
async fn named(name: &'static str) -> Origin {
    Origin::start(move |_| Reply::ok(name).header("cache-control", "max-age=3600")).await
}

/// A distribution for `alias` on one origin, named after the origin's port
/// (origins share no cache keys).
fn site(alias: &str, origin: &Origin, hooks: Value) -> Value {
    let domain = origin.domain();
    let id = format!("o{}", domain.rsplit(':').next().expect("a port"));
    json!({
        "aliases": [alias],
        "origins": [{"id": id, "domain_name": domain, "protocol": "http"}],
        "default_cache_behavior": {"target_origin_id": id, "hooks": hooks},
    })
}

fn etag(got: &Got) -> String {
    got.header("etag").expect("an ETag").to_owned()
}

/// Whether `edge` answers `alias` with `body`.
async fn serves(edge: &Edge, alias: &str, body: &str) -> bool {
    let got = edge.get(alias, "/").await;
    got.status == StatusCode::OK && got.text() == body
}

/// Replaces `id`'s config through `edge`, with the ETag `edge` reads first.
async fn replace(edge: &Edge, id: &str, config: Value) {
    let current = edge
        .api("GET", &format!("/v1/distributions/{id}"), None, &[])
        .await;
    let got = edge
        .api(
            "PUT",
            &format!("/v1/distributions/{id}/config"),
            Some(config),
            &[("if-match", &etag(&current))],
        )
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
}

async fn distribution(edge: &Edge, id: &str) -> Value {
    let got = edge
        .api("GET", &format!("/v1/distributions/{id}"), None, &[])
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    got.json()
}

fn host_ids(record: &Value) -> Vec<String> {
    let view: DistributionView = serde_json::from_value(record.clone()).expect("a distribution");
    view.hosts.into_iter().map(|h| h.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_host_is_served_by_all_and_deployed_means_all() {
    let etcd = Etcd::start().await;
    let (a, b, c) = (
        host(&etcd, "a").await,
        host(&etcd, "b").await,
        host(&etcd, "c").await,
    );
    let (blue, green) = (named("blue").await, named("green").await);

    // A hook uploaded through A runs on B and C: modules travel by hash.
    a.upload_hook("sec", SECURITY_HEADERS).await;
    let created = a
        .create(site(
            "www.example.com",
            &blue,
            json!({"viewer_response": {"module": "sec"}}),
        ))
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    for edge in [&a, &b, &c] {
        assert!(
            eventually(PROPAGATION, || serves(edge, "www.example.com", "blue")).await,
            "a host never served the new distribution"
        );
        let got = edge.get("www.example.com", "/").await;
        assert_eq!(got.header("x-frame-options"), Some("DENY"));
    }
    assert!(
        eventually(PROPAGATION, || async {
            distribution(&b, &id).await["status"] == "Deployed"
        })
        .await
    );
    assert_eq!(host_ids(&distribution(&b, &id).await), ["a", "b", "c"]);

    // A PUT through A is served by B and C.
    let teal = named("teal").await;
    replace(&a, &id, site("www.example.com", &teal, json!({}))).await;
    for edge in [&b, &c] {
        assert!(eventually(PROPAGATION, || serves(edge, "www.example.com", "teal")).await);
    }

    // C stops following (it crashed); its report lives on until its lease
    // ends, so a change through B is not Deployed while C may serve the old.
    c.crash().await;
    replace(&b, &id, site("www.example.com", &green, json!({}))).await;
    for edge in [&a, &b] {
        assert!(eventually(PROPAGATION, || serves(edge, "www.example.com", "green")).await);
    }
    let record = distribution(&a, &id).await;
    assert_eq!(record["status"], "InProgress", "{record}");
    let lagging: Vec<&Value> = record["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter(|h| h["current"] == false)
        .collect();
    assert_eq!(lagging.len(), 1, "{record}");
    assert_eq!(lagging[0]["id"], "c");

    // Its lease ends: C leaves the list, and the change is Deployed.
    assert!(
        eventually(PROPAGATION, || async {
            let record = distribution(&a, &id).await;
            record["status"] == "Deployed" && host_ids(&record) == ["a", "b"]
        })
        .await,
        "{}",
        distribution(&a, &id).await
    );
    let list = a.api("GET", "/v1/distributions", None, &[]).await.json();
    assert_eq!(list["items"][0]["status"], "Deployed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writes_through_two_hosts_have_one_winner() {
    let etcd = Etcd::start().await;
    let (a, b) = (host(&etcd, "a").await, host(&etcd, "b").await);
    let (one, two) = (named("one").await, named("two").await);
    let created = a.create(site("race.example.com", &one, json!({}))).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/distributions/{id}/config");

    for round in 0..5 {
        // B reads the ETag A's last write left (a read catches up with the
        // store), then both write against it at once.
        let current = b.api("GET", &path, None, &[]).await;
        assert_eq!(current.status, StatusCode::OK, "{}", current.text());
        let tag = etag(&current);
        let if_match = [("if-match", tag.as_str())];
        let (via_a, via_b) = tokio::join!(
            a.api(
                "PUT",
                &path,
                Some(site("race.example.com", &one, json!({}))),
                &if_match
            ),
            b.api(
                "PUT",
                &path,
                Some(site("race.example.com", &two, json!({}))),
                &if_match
            ),
        );
        let mut statuses = [via_a.status.as_u16(), via_b.status.as_u16()];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 412],
            "round {round}: {} / {}",
            via_a.text(),
            via_b.text()
        );
    }

    // Two distributions claiming one alias at once: one 201, one 409.
    let (first, second) = tokio::join!(
        a.api(
            "POST",
            "/v1/distributions",
            Some(site("claimed.example.com", &one, json!({}))),
            &[]
        ),
        b.api(
            "POST",
            "/v1/distributions",
            Some(site("claimed.example.com", &two, json!({}))),
            &[]
        ),
    );
    let mut statuses = [first.status.as_u16(), second.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "{} / {}", first.text(), second.text());
}

/// Invalidates through `host` and waits until it reports `Completed`.
async fn invalidate_until_completed(host: &Edge, id: &str, body: Value) {
    let got = host
        .api(
            "POST",
            &format!("/v1/distributions/{id}/invalidations"),
            Some(body),
            &[],
        )
        .await;
    assert_eq!(got.status, StatusCode::CREATED, "{}", got.text());
    let location = got.header("location").expect("location").to_owned();
    assert!(
        eventually(PROPAGATION, || async {
            host.api("GET", &location, None, &[]).await.json()["status"] == "Completed"
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_empties_every_hosts_cache_before_it_is_completed() {
    let etcd = Etcd::start().await;
    let (a, b) = (host(&etcd, "a").await, host(&etcd, "b").await);
    let fetched = Arc::new(AtomicUsize::new(0));
    let counter = fetched.clone();
    let origin = Origin::start(move |_| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::ok(format!("v{n}"))
            .header("cache-control", "max-age=3600")
            .header("surrogate-key", "home")
    })
    .await;
    let created = a.create(site("inv.example.com", &origin, json!({}))).await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(
        eventually(PROPAGATION, || async {
            b.get("inv.example.com", "/").await.status == StatusCode::OK
        })
        .await
    );
    // Both caches hold a copy; repeats are hits.
    a.get("inv.example.com", "/").await;
    let cached_b = b.get("inv.example.com", "/").await.text();
    assert_eq!(b.get("inv.example.com", "/").await.text(), cached_b);
    let before = fetched.load(Ordering::SeqCst);

    invalidate_until_completed(&a, &id, json!({"paths": ["/*"]})).await;
    // Completed: B's next request goes to the origin.
    let refetched = b.get("inv.example.com", "/").await;
    assert_ne!(refetched.text(), cached_b);
    assert_eq!(fetched.load(Ordering::SeqCst), before + 1);

    // A purge by tag, taken by B, travels the same way: A's copy (stored
    // before) is gone once it is Completed.
    let cached_a = a.get("inv.example.com", "/").await.text();
    assert_eq!(a.get("inv.example.com", "/").await.cache(), "Hit");
    invalidate_until_completed(&b, &id, json!({"tags": ["home"]})).await;
    let refetched = a.get("inv.example.com", "/").await;
    assert_eq!(refetched.cache(), "Miss");
    assert_ne!(refetched.text(), cached_a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_outage_costs_viewers_nothing_and_hosts_catch_up() {
    let mut etcd = Etcd::start().await;
    let (a, b) = (host(&etcd, "a").await, host(&etcd, "b").await);
    let (one, two) = (named("one").await, named("two").await);
    let created = a.create(site("up.example.com", &one, json!({}))).await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(eventually(PROPAGATION, || serves(&b, "up.example.com", "one")).await);
    let loads = [
        Load::start(&a, "up.example.com", "/"),
        Load::start(&b, "up.example.com", "/"),
    ];

    etcd.stop().await;
    let disconnected = |edge: &Edge| {
        let client = edge.client.clone();
        let control = edge.control;
        async move {
            let req = http::Request::get(format!("http://{control}/healthz"))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("request");
            client.send(req).await.json()["store"] == "disconnected"
        }
    };
    for edge in [&a, &b] {
        assert!(eventually(PROPAGATION, || disconnected(edge)).await);
    }
    let metrics = a.api("GET", "/metrics", None, &[]).await.text();
    assert!(metrics.contains("edge_store_connected 0"), "{metrics}");
    // Writes fail cleanly; reads answer from the snapshot.
    let refused = a
        .api(
            "POST",
            "/v1/distributions",
            Some(site("new.example.com", &two, json!({}))),
            &[],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.text()
    );
    assert_eq!(distribution(&b, &id).await["id"], id.as_str());

    // A host that starts now waits for the store instead of serving nothing.
    let joining = {
        let endpoint = etcd.store();
        tokio::spawn(async move {
            Edge::start_with(move |opts| {
                opts.store = endpoint;
                opts.host_id = "late".to_owned();
                opts.fleet_lease = Duration::from_secs(2);
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !joining.is_finished(),
        "a host started with no store to read"
    );

    etcd.restart().await;
    let late = tokio::time::timeout(PROPAGATION, joining)
        .await
        .expect("the late host started once etcd was back")
        .expect("late host task");
    assert!(serves(&late, "up.example.com", "one").await);
    for edge in [&a, &b] {
        assert!(
            eventually(PROPAGATION, || async { !disconnected(edge).await }).await,
            "a host never reconnected"
        );
    }
    // Hosts follow again: a change through the late host reaches A and B.
    replace(&late, &id, site("up.example.com", &two, json!({}))).await;
    for edge in [&a, &b] {
        assert!(eventually(PROPAGATION, || serves(edge, "up.example.com", "two")).await);
    }
    for load in loads {
        let report = load.stop().await;
        assert!(report.total > 100, "too few requests: {}", report.total);
        assert!(report.failures.is_empty(), "{:?}", report.failures);
    }
}

/// LEB128 of `n`.
fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = u8::try_from(n & 0x7f).expect("seven bits");
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_over_etcds_write_limit_is_refused_whole() {
    let etcd = Etcd::start().await;
    let a = host(&etcd, "a").await;
    // A valid component made 2 MiB long by a custom section: past etcd's
    // default 1.5 MiB per write.
    let mut module = std::fs::read(SECURITY_HEADERS).expect("example hook");
    let mut payload = leb128(4);
    payload.extend_from_slice(b"fill");
    payload.resize(payload.len() + (2 << 20), 0);
    module.push(0);
    module.extend(leb128(payload.len()));
    module.extend(payload);
    let got = a
        .api_raw("PUT", "/v1/hooks/big", module, &[], Some(edge_e2e::TOKEN))
        .await;
    assert_eq!(got.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", got.text());
    assert_eq!(got.error_code(), "RequestEntityTooLarge");
    let got = a.api("GET", "/v1/hooks/big", None, &[]).await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    // The store is fine afterwards.
    a.upload_hook("small", SECURITY_HEADERS).await;
}

/// The id a host generated and keeps in its data dir.
fn kept_id(edge: &Edge) -> String {
    std::fs::read_to_string(edge.dir.path().join("host-id"))
        .expect("a host-id file")
        .trim()
        .to_owned()
}

/// Hosts with default options but the store, each on its own data dir.
async fn unnamed_host(etcd: &Etcd) -> Edge {
    Edge::start_with(|opts| etcd.configure(opts, "")).await
}

/// Starts a host on `dir` named `id` ("": the one kept in `dir`) that is
/// expected to refuse; its error.
async fn refused_start(etcd: &Etcd, dir: &std::path::Path, id: &str) -> String {
    let mut opts = edge::HostOptions::new(dir);
    opts.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    opts.control = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    opts.token = Some(edge_e2e::TOKEN.to_owned());
    etcd.configure(&mut opts, id);
    match edge::RunningHost::start(opts).await {
        Ok(host) => {
            host.shutdown().await;
            panic!("a host named {id:?} started beside a live host of that name");
        }
        Err(err) => err.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_without_a_host_id_name_themselves_apart_and_keep_their_names() {
    let etcd = Etcd::start().await;
    let (a, b) = (unnamed_host(&etcd).await, unnamed_host(&etcd).await);
    let (id_a, id_b) = (kept_id(&a), kept_id(&b));
    assert_ne!(id_a, id_b);
    let origin = named("one").await;
    let created = a.create(site("ids.example.com", &origin, json!({}))).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let mut both = vec![id_a.clone(), id_b.clone()];
    both.sort();
    assert!(
        eventually(PROPAGATION, || async {
            let record = distribution(&b, &id).await;
            record["status"] == "Deployed" && host_ids(&record) == both
        })
        .await,
        "{}",
        distribution(&b, &id).await
    );
    assert!(serves(&b, "ids.example.com", "one").await);
    let via = b.get("ids.example.com", "/").await;
    assert_eq!(
        via.header("via"),
        Some(format!("1.1 {id_b} (edge)").as_str())
    );

    // A restarts on its data dir under the same name: after a clean stop,
    // and after a crash, while its old report still lives.
    let dir = a.stop().await;
    let a = Edge::start_in(dir, |opts| etcd.configure(opts, "")).await;
    assert_eq!(kept_id(&a), id_a);
    let dir = a.crash().await;
    let a = Edge::start_in(dir, |opts| etcd.configure(opts, "")).await;
    assert_eq!(kept_id(&a), id_a);
    assert_eq!(host_ids(&distribution(&a, &id).await), both);

    // A data dir copied from B (its host-id file with it) is refused while
    // B lives.
    let copy = tempfile::tempdir().expect("temp dir");
    std::fs::copy(b.dir.path().join("host-id"), copy.path().join("host-id")).expect("copied");
    let err = refused_start(&etcd, copy.path(), "").await;
    assert!(
        err.contains(&format!("another live host already uses --host-id {id_b};")),
        "{err}"
    );
    assert!(err.contains("remove") && err.contains("host-id"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_a_live_hosts_id_refuses_to_start() {
    let etcd = Etcd::start().await;
    let twin = host(&etcd, "twin").await;
    let other = tempfile::tempdir().expect("temp dir");
    let err = refused_start(&etcd, other.path(), "twin").await;
    assert_eq!(
        err,
        "another live host already uses --host-id twin; give this host its own --host-id or stop the other host first"
    );
    // The refused host left no report: the fleet is the one live host.
    let origin = named("one").await;
    let created = twin
        .create(site("twin.example.com", &origin, json!({})))
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(host_ids(&distribution(&twin, &id).await), ["twin"]);

    // Once the host has left the fleet, its id is free.
    twin.stop().await;
    Edge::start_in(other, |opts| etcd.configure(opts, "twin")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_cannot_be_reached_is_skipped_for_the_next() {
    let etcd = Etcd::start().await;
    let edge::store::StoreSpec::Etcd { endpoints } = etcd.store() else {
        panic!("an etcd store spec");
    };
    // A port nobody listens on, first in the list.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let members = [vec![format!("http://{closed}")], endpoints].concat();
    let a = tokio::time::timeout(
        PROPAGATION,
        Edge::start_with(|opts| {
            etcd.configure(opts, "a");
            opts.store = edge::store::StoreSpec::Etcd { endpoints: members };
        }),
    )
    .await
    .expect("a host with an unreachable first member started");
    let b = host(&etcd, "b").await;
    let origin = named("one").await;
    a.create(site("members.example.com", &origin, json!({})))
        .await;
    assert!(eventually(PROPAGATION, || serves(&b, "members.example.com", "one")).await);
}

/// The ETag of `path` as `edge` reads it now.
async fn etag_of(edge: &Edge, path: &str) -> String {
    etag(&edge.api("GET", path, None, &[]).await)
}

/// Sends one control request through `edge` and checks its status.
async fn write(
    edge: &Edge,
    method: &str,
    path: &str,
    body: Option<Value>,
    if_match: &str,
) -> Value {
    let headers: &[(&str, &str)] = if if_match.is_empty() {
        &[]
    } else {
        &[("if-match", if_match)]
    };
    let got = edge.api(method, path, body, headers).await;
    assert!(
        got.status.is_success(),
        "{method} {path}: {} {}",
        got.status,
        got.text()
    );
    if got.text().is_empty() {
        Value::Null
    } else {
        got.json()
    }
}

/// Every kind of control write through `edge`, one at a time, calling
/// `after` with a name for each: hook versions (a second version of a name,
/// a second name on the same bytes), KV puts and deletes, distributions with
/// hooks, a staging copy, a policy attached then detached, an alias moved
/// between distributions, invalidations, a certificate, a promote, and the
/// deletes of each.
async fn every_kind_of_write(edge: &Edge, origin: &Origin, mut after: impl AsyncFnMut(&str)) {
    use edge_e2e::examples::EDGE_AUTH;
    edge.upload_hook("sec", SECURITY_HEADERS).await;
    after("hook uploaded").await;
    edge.upload_hook("sec", EDGE_AUTH).await;
    after("second version of a hook").await;
    edge.upload_hook("also-sec", SECURITY_HEADERS).await;
    after("second name on the same bytes").await;
    edge.kv_put("flags", "green_weight", "10").await;
    edge.kv_put("flags", "blue", "on").await;
    after("kv put").await;
    write(edge, "DELETE", "/v1/kv/flags/blue", None, "").await;
    after("kv delete").await;

    let a = edge
        .create(site(
            "a.state.test",
            origin,
            json!({"viewer_response": {"module": "sec"}}),
        ))
        .await;
    let a = a["id"].as_str().expect("id").to_owned();
    after("distribution created").await;
    let mut b_config = site(
        "b.state.test",
        origin,
        json!({"viewer_response": {"module": "also-sec"}}),
    );
    b_config["aliases"] = json!(["b.state.test", "*.wild.state.test"]);
    let b = edge.create(b_config).await;
    let b = b["id"].as_str().expect("id").to_owned();
    after("second distribution").await;

    let mut staged = site(
        "staging",
        origin,
        json!({"viewer_request": {"module": "also-sec"}}),
    );
    staged["aliases"] = json!([]);
    let staging = edge.staging_copy(&a, staged).await;
    after("staging copy").await;
    let policy = write(
        edge,
        "POST",
        "/v1/continuous-deployment-policies",
        Some(json!({"staging_distribution_id": staging, "traffic": {"type": "weight", "weight": 0.1}})),
        "",
    )
    .await;
    let policy = policy["id"].as_str().expect("id").to_owned();
    after("policy created").await;
    let dist_a = format!("/v1/distributions/{a}");
    let mut attached = distribution(edge, &a).await["config"].clone();
    attached["continuous_deployment_policy_id"] = json!(policy);
    let tag = etag_of(edge, &dist_a).await;
    write(
        edge,
        "PUT",
        &format!("{dist_a}/config"),
        Some(attached.clone()),
        &tag,
    )
    .await;
    after("policy attached").await;

    write(
        edge,
        "POST",
        &format!("/v1/distributions/{a}/associate-alias"),
        Some(json!({"alias": "b.state.test"})),
        "",
    )
    .await;
    after("alias moved").await;
    for paths in [json!(["/a"]), json!(["/img/*", "/b"])] {
        write(
            edge,
            "POST",
            &format!("{dist_a}/invalidations"),
            Some(json!({"paths": paths})),
            "",
        )
        .await;
    }
    after("invalidations").await;
    let pem = |name: &str| std::fs::read_to_string(edge_e2e::tls::fixture(name)).expect("fixture");
    write(
        edge,
        "PUT",
        "/v1/certificates/site",
        Some(
            json!({"certificate_chain": pem("test-cert.pem"), "private_key": pem("test-key.pem")}),
        ),
        "",
    )
    .await;
    after("certificate").await;

    let tags = format!(
        "{}, {}",
        etag_of(edge, &dist_a).await,
        etag_of(edge, &format!("/v1/distributions/{staging}")).await
    );
    write(
        edge,
        "POST",
        &format!("{dist_a}/promote"),
        Some(json!({"staging_distribution_id": staging})),
        &tags,
    )
    .await;
    after("promoted").await;

    let mut detached = distribution(edge, &a).await["config"].clone();
    detached["continuous_deployment_policy_id"] = Value::Null;
    let tag = etag_of(edge, &dist_a).await;
    write(
        edge,
        "PUT",
        &format!("{dist_a}/config"),
        Some(detached),
        &tag,
    )
    .await;
    let policy_path = format!("/v1/continuous-deployment-policies/{policy}");
    let tag = etag_of(edge, &policy_path).await;
    write(edge, "DELETE", &policy_path, None, &tag).await;
    after("policy detached and deleted").await;

    let dist_b = format!("/v1/distributions/{b}");
    let mut disabled = distribution(edge, &b).await["config"].clone();
    disabled["enabled"] = json!(false);
    disabled["default_cache_behavior"]["hooks"] = json!({});
    let tag = etag_of(edge, &dist_b).await;
    write(
        edge,
        "PUT",
        &format!("{dist_b}/config"),
        Some(disabled),
        &tag,
    )
    .await;
    let tag = etag_of(edge, &dist_b).await;
    write(edge, "DELETE", &dist_b, None, &tag).await;
    after("distribution deleted").await;
    write(edge, "DELETE", "/v1/hooks/sec", None, "").await;
    after("hook deleted").await;
    write(edge, "DELETE", "/v1/certificates/site", None, "").await;
    after("certificate deleted").await;
}

/// Every write a host makes is served as the same state a full load of the
/// store builds: the writer's decoders and a follower's are the same code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_write_is_the_state_a_full_load_of_the_store_builds() {
    let edge = Edge::start().await;
    let origin = named("blue").await;
    let plane = edge.host.as_ref().expect("running").control.plane().clone();
    let mut steps = 0;
    every_kind_of_write(&edge, &origin, async |step| {
        let served = plane.state();
        let loaded = plane.load_from_store().await.expect("a load");
        assert_eq!(served.revision, loaded.revision, "after {step}");
        assert_eq!(served.summary(), loaded.summary(), "after {step}");
        steps += 1;
    })
    .await;
    assert_eq!(steps, 18);
    // The summary holds what was written, and not what was deleted.
    let summary = plane.state().summary();
    assert!(summary["hooks"]["sec"].is_null(), "{summary}");
    assert_eq!(
        summary["hooks"]["also-sec"]["versions"]
            .as_object()
            .map(serde_json::Map::len),
        Some(1)
    );
    assert_eq!(summary["kv"]["flags"], json!([["green_weight", 2]]));
    assert_eq!(
        summary["aliases"].as_object().map(serde_json::Map::len),
        Some(2)
    );
    assert_eq!(
        summary["distributions"]
            .as_object()
            .map(serde_json::Map::len),
        Some(2)
    );
    let invalidations: Vec<&Value> = summary["invalidations"]
        .as_object()
        .expect("invalidations")
        .values()
        .collect();
    assert_eq!(invalidations.len(), 1);
    assert_eq!(invalidations[0][1]["paths"], json!(["/img/*", "/b"]));
    assert!(
        summary["certificates"]
            .as_object()
            .is_some_and(serde_json::Map::is_empty)
    );
}

/// A host fed only by the store's watch ends with the serving snapshot of
/// the host every write went through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_fed_by_the_watch_serves_what_the_writing_host_serves() {
    let etcd = Etcd::start().await;
    let (a, b) = (host(&etcd, "a").await, host(&etcd, "b").await);
    let origin = named("blue").await;
    every_kind_of_write(&a, &origin, async |_| {}).await;
    let (pa, pb) = (
        a.host.as_ref().expect("running").control.plane().clone(),
        b.host.as_ref().expect("running").control.plane().clone(),
    );
    let written = pa.state().revision;
    assert!(
        eventually(PROPAGATION, || async { pb.state().revision >= written }).await,
        "b never caught up"
    );
    assert_eq!(pa.state().summary(), pb.state().summary());
    assert_eq!(pa.routing().summary(), pb.routing().summary());
    assert!(
        pb.routing().resolve("b.state.test").is_some(),
        "the moved alias is served"
    );
    assert!(
        pb.routing().resolve("x.wild.state.test").is_none(),
        "a deleted distribution's alias is not"
    );
}

/// Sets `payments/stripe` through `edge`.
async fn put_secret(edge: &Edge, value: &str) {
    let got = edge
        .api_raw(
            "PUT",
            "/v1/secrets/payments/stripe",
            value.as_bytes().to_vec(),
            &[],
            Some(edge_e2e::TOKEN),
        )
        .await;
    assert!(got.status.is_success(), "{}", got.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_set_through_one_host_is_read_by_hooks_on_every_host() {
    use edge_e2e::examples::MISBEHAVE;
    let etcd = Etcd::start().await;
    let (a, b) = (host(&etcd, "host-a").await, host(&etcd, "host-b").await);
    let origin = Origin::start(|req| {
        let secret = req
            .headers
            .get("x-secret")
            .map_or("-", |v| v.to_str().unwrap_or("?"));
        Reply::ok(format!("secret={secret}"))
    })
    .await;
    a.upload_hook("misbehave", MISBEHAVE).await;
    let reader = json!({"module": "misbehave", "secret_stores": ["payments"], "config": {
        "viewer_request": "secret", "secret_store": "payments", "secret_name": "stripe"}});
    let mut config = site(
        "secret.fleet.test",
        &origin,
        json!({"viewer_request": reader}),
    );
    config["default_cache_behavior"]["default_ttl"] = json!(0);
    a.create(config).await;
    // Set through one host: a hook on the other reads it.
    put_secret(&a, "sk_one").await;
    assert!(
        eventually(PROPAGATION, || serves(
            &b,
            "secret.fleet.test",
            "secret=sk_one"
        ))
        .await,
        "host b never read the secret"
    );
    // Rotated through the other: the first reads the new value.
    put_secret(&b, "sk_two").await;
    assert!(
        eventually(PROPAGATION, || serves(
            &a,
            "secret.fleet.test",
            "secret=sk_two"
        ))
        .await,
        "host a never read the rotated secret"
    );
    // Deleted through one: gone on both.
    let got = a
        .api("DELETE", "/v1/secrets/payments/stripe", None, &[])
        .await;
    assert!(got.status.is_success(), "{}", got.text());
    for edge in [&a, &b] {
        assert!(
            eventually(PROPAGATION, || serves(
                edge,
                "secret.fleet.test",
                "secret=not-found"
            ))
            .await,
            "a deleted secret was still read"
        );
    }
    // Listed by name on both, never with a value.
    let listed = b.api("GET", "/v1/secrets/payments", None, &[]).await;
    assert!(!listed.text().contains("sk_"), "{}", listed.text());
}
