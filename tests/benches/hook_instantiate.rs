//! One hook invocation as the request path runs it: a fresh instance of the
//! `bluegreen` example (new `Store`, instantiate from the `InstancePre`, call
//! `viewer-request`, drop), on the host's engine configuration. (The host
//! runs such a short invocation on the request's own thread; only long or
//! failing ones are handed to the hook threads.)
//!
//!     cargo bench -p edge-e2e --bench hook_instantiate
//!
//! `EDGE_BENCH_HOOK=path/to/hook.wasm` measures another component the same
//! way (its `viewer-request`, with the same request, KV and context).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use edge::wasm::{self, BoundHook, HookRuntime, KvData, RuntimeOptions};

fn bench(c: &mut Criterion) {
    let runtime = HookRuntime::new(&RuntimeOptions {
        cache_dir: None,
        function_cache_dir: None,
        parallel_compile: false,
        held_memory_mib: 1024,
        max_instances: 100,
        measure_cpu: false,
        threads: 0,
    })
    .expect("runtime");
    let path = std::env::var_os("EDGE_BENCH_HOOK")
        .filter(|p| !p.is_empty())
        .map_or_else(
            || edge_e2e::examples::BLUEGREEN.into(),
            std::path::PathBuf::from,
        );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let compiled = Arc::new(runtime.compile("bluegreen", &bytes).expect("compile"));
    let hook = BoundHook {
        compiled,
        event: wasm::Event::ViewerRequest,
        config: Arc::new(serde_json::Map::new()),
        budget: Duration::from_millis(5),
        memory_limit: wasm::DEFAULT_MEMORY_LIMIT,
        body: None,
        fetch: None,
        secret_stores: Arc::from([]),
    };
    let mut kv = KvData::default();
    kv.insert(
        "bluegreen",
        "green_weight",
        bytes::Bytes::from_static(b"10"),
    );
    let kv = Arc::new(kv);
    let ctx = wasm::Context {
        event: wasm::Event::ViewerRequest,
        distribution_id: "EBENCH".into(),
        distribution_domain: "ebench.edge.internal".into(),
        request_id: "R".into(),
        arm: wasm::bindings::Arm::Primary,
        origin_id: "blue".into(),
        body_truncated: false,
    };
    let req = wasm::Request {
        method: "GET".into(),
        path: "/index.html".into(),
        query: None,
        headers: vec![
            wasm::bindings::Header {
                name: "host".into(),
                value: b"www.example.com".to_vec(),
            },
            wasm::bindings::Header {
                name: "cookie".into(),
                value: b"deployment=green".to_vec(),
            },
        ],
        client_address: "127.0.0.1".into(),
        body: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let name = path.file_stem().unwrap_or_default().to_string_lossy();
    c.bench_function(
        &format!("{name} viewer-request: instantiate + call + drop"),
        |b| {
            b.to_async(&rt).iter(|| async {
                let instances = wasm::RequestHooks::default();
                let ran = runtime
                    .request_event(
                        &hook,
                        &instances,
                        "R",
                        kv.clone(),
                        None,
                        ctx.clone(),
                        req.clone(),
                    )
                    .await
                    .expect("hook ran");
                std::hint::black_box(ran.value);
            });
        },
    );

    // One request's two viewer events: one instance for both (the current
    // world), against the 0.1.0 build of the same hook, an instance each.
    let resp = wasm::Response {
        status: 200,
        headers: Vec::new(),
        body: None,
    };
    let frozen = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/hooks-0.1.0/bluegreen.wasm");
    let frozen = std::fs::read(&frozen).unwrap_or_else(|e| panic!("{}: {e}", frozen.display()));
    for (label, bytes) in [
        ("one instance (0.2.0)", &bytes),
        ("an instance each (0.1.0)", &frozen),
    ] {
        let compiled = Arc::new(runtime.compile("bluegreen", bytes).expect("compile"));
        let on = |event| BoundHook {
            compiled: compiled.clone(),
            event,
            ..hook.clone()
        };
        let (request, response) = (
            on(wasm::Event::ViewerRequest),
            on(wasm::Event::ViewerResponse),
        );
        c.bench_function(
            &format!("bluegreen viewer-request + viewer-response, {label}"),
            |b| {
                b.to_async(&rt).iter(|| async {
                    let instances = wasm::RequestHooks::default();
                    let ran = runtime
                        .request_event(
                            &request,
                            &instances,
                            "R",
                            kv.clone(),
                            None,
                            ctx.clone(),
                            req.clone(),
                        )
                        .await
                        .expect("viewer-request ran");
                    std::hint::black_box(ran.value);
                    let ctx = wasm::Context {
                        event: wasm::Event::ViewerResponse,
                        ..ctx.clone()
                    };
                    let ran = runtime
                        .response_event(
                            &response,
                            &instances,
                            "R",
                            kv.clone(),
                            None,
                            ctx,
                            req.clone(),
                            resp.clone(),
                        )
                        .await
                        .expect("viewer-response ran");
                    std::hint::black_box(ran.value);
                });
            },
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
