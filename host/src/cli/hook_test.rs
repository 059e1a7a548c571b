//! `edge hook test`: runs a plugin's four events on one request in the host's
//! own runtime, with the host's limits, and says what each event did.
//!
//! The events run in the order the host runs them on a miss: viewer-request,
//! origin-request, the origin (the `--response` given, 200 by default),
//! origin-response, viewer-response. An answer from a request event skips
//! what the host would skip: a viewer-request answer goes straight to
//! viewer-response, an origin-request answer skips the origin and
//! origin-response. A hook that fails stops the run, with the status the
//! host would answer. With `--include-body` the events are given bodies as
//! an association with `include_body` is: the request's `body` to the
//! request events, the `--response`'s `body` to origin-response.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};

use super::client::CliError;
use crate::config::raw::BodyOverLimit;
use crate::wasm::stage::{Decision, Exchange, HookStage, ORDER, Picked, SeenBody};
use crate::wasm::{
    self, BodyRead, BoundHook, CompiledHook, Event, HookRuntime, KvData, RuntimeOptions, convert,
};

/// `edge hook test`.
#[derive(Debug, Args)]
pub struct HookTestArgs {
    /// The plugin's `.wasm` component.
    pub wasm: PathBuf,
    /// The viewer request, JSON: `{"method", "uri", "headers": {name: value
    /// or [values]}, "client_ip", "body"}` (default: `GET /`).
    #[arg(long, conflicts_with = "har")]
    pub request: Option<PathBuf>,
    /// Take the viewer request from a HAR file (a browser's network export).
    #[arg(long)]
    pub har: Option<PathBuf>,
    /// Which HAR entry (0 is the first).
    #[arg(long, default_value_t = 0)]
    pub entry: usize,
    /// The origin's answer, JSON: `{"status", "headers", "body"}` (default:
    /// 200).
    #[arg(long)]
    pub response: Option<PathBuf>,
    /// The hook association's `config` object, a JSON file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// KV data the hook reads, `namespace/key=value` (repeatable).
    #[arg(long = "kv", value_name = "NS/KEY=VALUE")]
    pub kv: Vec<String>,
    /// The origin the behavior targets (the context's origin id).
    #[arg(long, default_value = "origin")]
    pub origin: String,
    /// Origin ids a hook may pick (comma-separated); any id when unset.
    #[arg(long, value_delimiter = ',')]
    pub origins: Vec<String>,
    /// CPU budget per event (ms; default 5 for viewer events, 30 for origin events).
    #[arg(long)]
    pub cpu_budget_ms: Option<u64>,
    /// Memory cap per event (MiB; default 16).
    #[arg(long)]
    pub memory_limit_mib: Option<u64>,
    /// Give the events their bodies, as `include_body: true` does.
    #[arg(long)]
    pub include_body: bool,
    /// The most of a body an event is given (KiB; default 1024).
    #[arg(long, requires = "include_body")]
    pub body_limit_kib: Option<u64>,
    /// What a longer body gets: `truncate` or `reject`.
    #[arg(long, requires = "include_body", value_parser = body_over_limit)]
    pub body_over_limit: Option<BodyOverLimit>,
    /// A server the hook may send requests to with `fetch`, as the
    /// distribution's `backends` declare one: `ID=http(s)://HOST[:PORT]`
    /// (repeatable). With any, the events may fetch as an association with
    /// `"fetch": {}` does (4 requests each, 2 s, 1 MiB answers), for real.
    #[arg(long = "backend", value_name = "ID=URL")]
    pub backends: Vec<String>,
    /// Send `GET` and `HEAD` through a cache, as `"fetch": {"cache": true}`
    /// does: kept for the run, so a later event's request can be answered
    /// by what an earlier one stored.
    #[arg(long, requires = "backends")]
    pub fetch_cache: bool,
    /// Answer the hook's `fetch` requests from a HAR file's entries (by
    /// method and URL) instead of sending them: the servers its entries
    /// name are the declared ones. The events may fetch as with `--backend`.
    #[arg(long, value_name = "FILE", conflicts_with = "backends")]
    pub fetch_har: Option<PathBuf>,
    /// A host pattern a hook may route to by name, as the distribution's
    /// `dynamic_origins.allow` lists one (`*.tenants.example.com`, with an
    /// optional `:port`; repeatable; http and https, any address).
    #[arg(long = "dynamic-origin", value_name = "PATTERN")]
    pub dynamic_origins: Vec<String>,
    /// A secret the hook may read, `STORE/NAME=VALUE` or `STORE/NAME=@FILE`
    /// (repeatable); the association may read the stores named.
    #[arg(long = "secret", value_name = "STORE/NAME=VALUE")]
    pub secrets: Vec<String>,
    /// Print JSON instead of lines (the same as `-o json`).
    #[arg(long, hide = true)]
    pub json: bool,
    #[command(flatten)]
    pub compile_cache: super::CompileCacheArgs,
}

fn local(message: impl Into<String>) -> CliError {
    CliError::Local(message.into())
}

fn body_over_limit(value: &str) -> Result<BodyOverLimit, String> {
    match value {
        "truncate" => Ok(BodyOverLimit::Truncate),
        "reject" => Ok(BodyOverLimit::Reject),
        other => Err(format!("{other:?}: expected truncate or reject")),
    }
}

/// A `"body"` string of a `--request` or `--response` file.
fn body_from(value: Option<&Value>, what: &str) -> Result<Bytes, CliError> {
    match value {
        None | Some(Value::Null) => Ok(Bytes::new()),
        Some(Value::String(text)) => Ok(Bytes::from(text.clone())),
        Some(_) => Err(local(format!("{what}.body: expected a string"))),
    }
}

/// A body's start, for a line of the report.
fn preview(body: &[u8]) -> String {
    const SHOWN: usize = 120;
    let text = String::from_utf8_lossy(&body[..body.len().min(SHOWN)]);
    let more = if body.len() > SHOWN { "…" } else { "" };
    format!("{text:?}{more}")
}

fn read_json(path: &Path) -> Result<Value, CliError> {
    let bytes =
        std::fs::read(path).map_err(|e| local(format!("reading {}: {e}", path.display())))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| local(format!("{} is not JSON: {e}", path.display())))
}

/// `{name: value}` or `{name: [values]}` into a header map.
fn headers_from(value: Option<&Value>, what: &str) -> Result<HeaderMap, CliError> {
    let mut headers = HeaderMap::new();
    let Some(map) = value else {
        return Ok(headers);
    };
    let map = map
        .as_object()
        .ok_or_else(|| local(format!("{what}.headers: expected an object")))?;
    for (name, values) in map {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| local(format!("{what}.headers: {name:?} is not a header name")))?;
        let list = match values {
            Value::Array(items) => items.clone(),
            single => vec![single.clone()],
        };
        for v in list {
            let text = v
                .as_str()
                .ok_or_else(|| local(format!("{what}.headers.{name}: expected strings")))?;
            let value = HeaderValue::from_str(text)
                .map_err(|_| local(format!("{what}.headers.{name}: not a valid value")))?;
            headers.append(name.clone(), value);
        }
    }
    Ok(headers)
}

fn split_uri(uri: &str) -> (String, Option<String>) {
    match uri.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (uri.to_owned(), None),
    }
}

/// The viewer request from `--request`, `--har`, or `GET /`, with its body.
fn viewer_request(args: &HookTestArgs) -> Result<(Exchange, IpAddr, Bytes), CliError> {
    let default_ip = IpAddr::from([203, 0, 113, 10]);
    let mut ex = Exchange {
        method: Method::GET,
        path: "/".to_owned(),
        query: None,
        headers: HeaderMap::new(),
        target_id: args.origin.clone(),
    };
    if let Some(path) = &args.request {
        let v = read_json(path)?;
        if let Some(m) = v.get("method").and_then(Value::as_str) {
            ex.method = Method::from_bytes(m.as_bytes())
                .map_err(|_| local(format!("request.method: {m:?} is not a method")))?;
        }
        if let Some(uri) = v.get("uri").and_then(Value::as_str) {
            (ex.path, ex.query) = split_uri(uri);
        }
        ex.headers = headers_from(v.get("headers"), "request")?;
        let ip = match v.get("client_ip").and_then(Value::as_str) {
            Some(ip) => ip
                .parse()
                .map_err(|_| local(format!("request.client_ip: {ip:?} is not an address")))?,
            None => default_ip,
        };
        return Ok((ex, ip, body_from(v.get("body"), "request")?));
    }
    if let Some(path) = &args.har {
        let v = read_json(path)?;
        let request = v
            .pointer(&format!("/log/entries/{}/request", args.entry))
            .ok_or_else(|| {
                local(format!(
                    "{}: no entry {} with a request",
                    path.display(),
                    args.entry
                ))
            })?;
        let method = request
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("GET");
        ex.method = Method::from_bytes(method.as_bytes())
            .map_err(|_| local(format!("HAR method {method:?} is not a method")))?;
        let url = request
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| local("the HAR request has no url"))?;
        let uri: http::Uri = url
            .parse()
            .map_err(|_| local(format!("HAR url {url:?} is not a URL")))?;
        ex.path = uri.path().to_owned();
        ex.query = uri.query().map(str::to_owned);
        ex.headers = super::har::headers(request.get("headers"));
        if !ex.headers.contains_key(http::header::HOST)
            && let Some(Ok(host)) = uri.host().map(HeaderValue::from_str)
        {
            ex.headers.insert(http::header::HOST, host);
        }
        let body = request
            .pointer("/postData/text")
            .and_then(Value::as_str)
            .map_or_else(Bytes::new, |t| Bytes::from(t.to_owned()));
        return Ok((ex, default_ip, body));
    }
    Ok((ex, default_ip, Bytes::new()))
}

/// What one event did, for the report.
struct Step {
    event: &'static str,
    json: Value,
    lines: Vec<String>,
}

fn header_changes(before: &HeaderMap, after: &HeaderMap) -> (Vec<String>, Vec<String>) {
    let show =
        |n: &HeaderName, v: &HeaderValue| format!("{n}: {}", String::from_utf8_lossy(v.as_bytes()));
    let added = after
        .iter()
        .filter(|(n, v)| !before.get_all(*n).iter().any(|b| b == *v))
        .map(|(n, v)| show(n, v))
        .collect();
    let removed = before
        .iter()
        .filter(|(n, v)| !after.get_all(*n).iter().any(|a| a == *v))
        .map(|(n, v)| show(n, v))
        .collect();
    (added, removed)
}

fn uri_of(ex: &Exchange) -> String {
    match &ex.query {
        Some(q) => format!("{}?{q}", ex.path),
        None => ex.path.clone(),
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// The measurements and logs of one invocation.
fn ran_json<R>(ran: &wasm::Ran<R>) -> Value {
    json!({
        "ms": millis(ran.took),
        "cpu_ms": ran.cpu.map(millis),
        "instantiate_ms": ran.instantiate.map(millis),
        "memory_bytes": ran.memory_peak,
        "logs": ran.logs,
    })
}

fn ran_line<R>(ran: &wasm::Ran<R>) -> String {
    let instance = match ran.instantiate {
        Some(took) => format!("instantiate {:.3} ms", millis(took)),
        None => "the request's instance".to_owned(),
    };
    format!(
        "{:.3} ms, CPU {:.3} ms ({instance}), memory {:.1} MiB",
        millis(ran.took),
        ran.cpu.map_or(0.0, millis),
        ran.memory_peak as f64 / f64::from(1u32 << 20),
    )
}

struct Runner {
    runtime: HookRuntime,
    compiled: Arc<CompiledHook>,
    config: Arc<serde_json::Map<String, Value>>,
    kv: Arc<KvData>,
    budget: Option<Duration>,
    memory: usize,
    client: IpAddr,
    origins: Vec<String>,
    /// The instance the events share (one request's).
    instances: wasm::RequestHooks,
    /// How the events are given bodies (`--include-body`).
    body: Option<BodyRead>,
    /// Where `fetch` requests go (`--backend`), each noted for the report.
    outbound: Option<Arc<Recorder>>,
    /// What each event may send (`--backend`).
    fetch: Option<wasm::fetch::FetchLimits>,
    /// The secret stores each event may read (`--secret`).
    secret_stores: Arc<[Arc<str>]>,
    /// What `--dynamic-origin` allows.
    dynamic: Option<crate::config::dynamic::DynamicOrigins>,
}

impl Runner {
    fn bound(&self, event: Event) -> BoundHook {
        let default = wasm::default_budget(&self.compiled, event);
        BoundHook {
            compiled: self.compiled.clone(),
            event,
            config: self.config.clone(),
            budget: self.budget.unwrap_or(default),
            memory_limit: self.memory,
            body: self.body.filter(|_| event != Event::ViewerResponse),
            fetch: self.fetch,
            secret_stores: self.secret_stores.clone(),
        }
    }

    /// What `event` is given of `body`, as the host would give it; a body
    /// the association rejects stops the run with the host's answer.
    fn seen(&self, event: Event, name: &str, body: &Bytes) -> Result<Option<SeenBody>, CliError> {
        let Some(read) = self.bound(event).body else {
            return Ok(None);
        };
        if body.len() <= read.limit {
            return Ok(Some(SeenBody {
                bytes: body.clone(),
                truncated: false,
            }));
        }
        if read.reject {
            let status = if event == Event::OriginResponse {
                "502 OriginBodyTooLarge"
            } else {
                "413 RequestBodyTooLarge"
            };
            return Err(local(format!(
                "{name}: the body is {} bytes, over the {} byte limit, which this association rejects (the host would answer {status})",
                body.len(),
                read.limit
            )));
        }
        Ok(Some(SeenBody {
            bytes: body.slice(..read.limit),
            truncated: true,
        }))
    }

    /// The stage the events run on, as the host's for a distribution
    /// `ETEST` on its primary arm.
    fn stage(&self) -> HookStage<'_> {
        HookStage {
            runtime: &self.runtime,
            instances: &self.instances,
            kv: self.kv.clone(),
            request_id: "test-request",
            client: self.client,
            distribution_id: "ETEST",
            distribution_domain: "etest.edge.internal",
            arm: wasm::bindings::Arm::Primary,
            outbound: self
                .outbound
                .clone()
                .map(|r| r as Arc<dyn wasm::fetch::Outbound>),
        }
    }

    /// The `fetch` requests sent since the last call, as report lines and
    /// JSON.
    fn fetched(&self, lines: &mut Vec<String>, json: &mut Value) {
        let Some(recorder) = &self.outbound else {
            return;
        };
        let sent = std::mem::take(&mut *recorder.sent.lock().unwrap_or_else(|e| e.into_inner()));
        if sent.is_empty() {
            return;
        }
        lines.extend(
            sent.iter()
                .map(|f| format!("fetch {} {} -> {}", f.method, f.url, f.outcome)),
        );
        json["fetches"] = sent
            .iter()
            .map(|f| json!({"method": f.method, "url": f.url, "outcome": f.outcome}))
            .collect();
    }

    /// A request event: the next request and its body, or the hook's answer.
    async fn request(
        &self,
        event: Event,
        name: &'static str,
        ex: &Exchange,
        body: &mut Bytes,
    ) -> Result<(Step, Result<Exchange, convert::CheckedResponse>), CliError> {
        let hook = self.bound(event);
        let seen = self.seen(event, name, body)?;
        let targets = |picked: Picked<'_>| match picked {
            Picked::Id(id) if self.origins.is_empty() || self.origins.iter().any(|o| o == id) => {
                Ok(id.to_owned())
            }
            Picked::Id(id) => Err(format!("origin id {id:?} is not one of --origins")),
            Picked::Dynamic(origin) => self
                .dynamic
                .as_ref()
                .ok_or_else(|| "no --dynamic-origin allows routing by host".to_owned())?
                .target_id(&convert::dynamic_target(origin)),
        };
        let ran = self
            .stage()
            .request_event(&hook, ex, seen.as_ref(), &targets)
            .await
            .map_err(|e| failed(name, e))?;
        let mut json = ran_json(&ran);
        let mut lines = vec![ran_line(&ran)];
        if let Some(seen) = &seen {
            lines.push(given(seen, body.len()));
        }
        let outcome = match ran.value {
            Decision::Forward {
                request: next,
                body: replaced,
            } => {
                if let Some(replaced) = replaced {
                    lines.push(format!(
                        "body replaced ({} bytes): {}",
                        replaced.len(),
                        preview(&replaced)
                    ));
                    json["body_replaced"] = json!(String::from_utf8_lossy(&replaced));
                    *body = replaced;
                }
                let (added, removed) = header_changes(&ex.headers, &next.headers);
                lines.insert(
                    0,
                    format!(
                        "forward {} {} to origin {}",
                        next.method,
                        uri_of(&next),
                        next.target_id
                    ),
                );
                lines.extend(added.iter().map(|h| format!("+ {h}")));
                lines.extend(removed.iter().map(|h| format!("- {h}")));
                json["outcome"] = json!("forward");
                json["request"] = json!({"method": next.method.as_str(), "uri": uri_of(&next)});
                json["origin"] = json!(next.target_id);
                json["headers_added"] = json!(added);
                json["headers_removed"] = json!(removed);
                Ok(next)
            }
            Decision::Respond(checked) => {
                let bytes = checked.body.as_ref().map_or(0, |b| b.len());
                lines.insert(
                    0,
                    format!("respond {} ({bytes} body bytes)", checked.status.as_u16()),
                );
                json["outcome"] = json!("respond");
                json["status"] = json!(checked.status.as_u16());
                json["body_bytes"] = json!(bytes);
                Err(checked)
            }
        };
        self.fetched(&mut lines, &mut json);
        lines.extend(ran.logs.iter().map(|l| format!("log: {l}")));
        Ok((
            Step {
                event: name,
                json,
                lines,
            },
            outcome,
        ))
    }

    /// A response event on `status`, `headers` and (when the event is given
    /// it) `body`.
    async fn response(
        &self,
        event: Event,
        name: &'static str,
        ex: &Exchange,
        status: StatusCode,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<(Step, convert::CheckedResponse), CliError> {
        let hook = self.bound(event);
        let seen = self.seen(event, name, body)?;
        let ran = self
            .stage()
            .response_event(&hook, ex, status, headers, seen.as_ref())
            .await
            .map_err(|e| failed(name, e))?;
        let answer = &ran.value;
        let checked = &answer.response;
        let (added, removed) = header_changes(headers, &checked.headers);
        let mut lines = vec![
            format!(
                "status {}{}",
                answer.status_refused.unwrap_or(checked.status).as_u16(),
                checked.body.as_ref().map_or(String::new(), |b| format!(
                    ", body replaced ({} bytes)",
                    b.len()
                ))
            ),
            ran_line(&ran),
        ];
        if let Some(seen) = &seen {
            lines.push(given(seen, body.len()));
        }
        if let Some(replaced) = &checked.body {
            lines.push(format!("body: {}", preview(replaced)));
        }
        if answer.status_refused.is_some() {
            lines.push(format!(
                "viewer-response cannot change the status: the host keeps {}",
                status.as_u16()
            ));
        }
        lines.extend(added.iter().map(|h| format!("+ {h}")));
        lines.extend(removed.iter().map(|h| format!("- {h}")));
        let mut json = ran_json(&ran);
        self.fetched(&mut lines, &mut json);
        lines.extend(ran.logs.iter().map(|l| format!("log: {l}")));
        json["outcome"] = json!("response");
        json["status"] = json!(answer.status_refused.unwrap_or(checked.status).as_u16());
        json["headers_added"] = json!(added);
        json["headers_removed"] = json!(removed);
        if let Some(replaced) = &checked.body {
            json["body_replaced"] = json!(String::from_utf8_lossy(replaced));
        }
        let checked = ran.value.response;
        Ok((
            Step {
                event: name,
                json,
                lines,
            },
            checked,
        ))
    }
}

/// A `fetch` request an event sent, for the report.
struct Fetched {
    method: String,
    url: String,
    /// The status (and whether the cache answered), or the error.
    outcome: String,
}

/// Sends the events' `fetch` requests and notes each.
struct Recorder {
    inner: Arc<dyn wasm::fetch::Outbound>,
    sent: Arc<std::sync::Mutex<Vec<Fetched>>>,
}

impl wasm::fetch::Outbound for Recorder {
    fn send(
        &self,
        req: wasm::fetch::Outgoing,
        limits: wasm::fetch::FetchLimits,
    ) -> wasm::fetch::Sent {
        let url = format!(
            "{}://{}:{}{}",
            req.scheme, req.host, req.port, req.path_and_query
        );
        let method = req.method.to_string();
        let sent = self.sent.clone();
        let answered = self.inner.send(req, limits);
        Box::pin(async move {
            let got = answered.await;
            let outcome = match &got {
                Ok(answer) => format!(
                    "{}{}",
                    answer.status.as_u16(),
                    match answer.cache_hit {
                        Some(true) => " (cache hit)",
                        Some(false) => " (cache miss)",
                        None => "",
                    }
                ),
                Err(err) => format!("{} ({err})", wasm::fetch::wit_name(err)),
            };
            sent.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Fetched {
                    method,
                    url,
                    outcome,
                });
            got
        })
    }
}

/// The servers of `--backend ID=URL`, as a distribution's `backends` are
/// declared, and what sends to them (noting each request); `None` without
/// any.
fn backends(given: &[String]) -> Result<Option<Arc<Recorder>>, CliError> {
    if given.is_empty() {
        return Ok(None);
    }
    let mut declared = Vec::new();
    for entry in given {
        let usage = || {
            local(format!(
                "--backend {entry:?}: expected ID=http(s)://HOST[:PORT]"
            ))
        };
        let (id, url) = entry.split_once('=').ok_or_else(usage)?;
        let (scheme, rest) = url.split_once("://").ok_or_else(usage)?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(usage());
        }
        declared.push(json!({"id": id, "domain_name": authority, "protocol": scheme}));
    }
    let first = declared[0]["id"].clone();
    let raw: crate::config::DistributionConfig = serde_json::from_value(json!({
        "origins": declared,
        "default_cache_behavior": {"target_origin_id": first},
    }))
    .map_err(|e| local(format!("--backend: {e}")))?;
    let config =
        crate::config::Distribution::try_from(raw).map_err(|e| local(format!("--backend: {e}")))?;
    let ids: Vec<String> = config.origins.iter().map(|o| o.id.clone()).collect();
    let fetcher = Arc::new(crate::origin::OriginFetcher::new());
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let dist = crate::proxy::routing::ServedDistribution::new(
        "ETEST",
        "etest.edge.internal",
        Arc::new(config),
        0,
        &fetcher,
        Vec::new(),
        metrics.distribution("ETEST", &ids),
    );
    let fetch = crate::proxy::outbound::HookFetch {
        origins: fetcher,
        metrics,
        dist: Arc::new(dist),
        runtime: tokio::runtime::Handle::current(),
        // One cache for the run, so a later event's request can hit what
        // an earlier one stored.
        cache: Some(crate::cache::SharedCache::new(64 << 20, 1 << 20)),
    };
    Ok(Some(Arc::new(Recorder {
        inner: Arc::new(fetch),
        sent: Arc::default(),
    })))
}

/// What `--dynamic-origin` patterns allow; `None` without any.
fn dynamic_origins(
    patterns: &[String],
) -> Result<Option<crate::config::dynamic::DynamicOrigins>, CliError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let raw: crate::config::raw::DynamicOriginsConfig = serde_json::from_value(json!({
        "allow": patterns, "protocols": ["http", "https"], "allow_private_addresses": true,
    }))
    .map_err(|e| local(format!("--dynamic-origin: {e}")))?;
    crate::config::dynamic::DynamicOrigins::new(&raw)
        .map(Some)
        .map_err(|e| local(format!("--dynamic-origin: {}", e.message)))
}

/// What an event was given of a body of `len` bytes.
fn given(seen: &SeenBody, len: usize) -> String {
    if seen.truncated {
        format!(
            "given the first {} of {len} body bytes (truncated)",
            seen.bytes.len()
        )
    } else {
        format!("given the body ({len} bytes)")
    }
}

/// A hook failure, with the status the host would answer.
fn failed(event: &str, err: wasm::HookError) -> CliError {
    let proxy = crate::error::ProxyError::from(err);
    let (status, code) = proxy.status_and_code();
    local(format!(
        "{event}: {proxy} (the host would answer {} {code})",
        status.as_u16()
    ))
}

/// Runs the events and prints what each did.
pub async fn run(args: HookTestArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let bytes = std::fs::read(&args.wasm)
        .map_err(|e| local(format!("reading {}: {e}", args.wasm.display())))?;
    let cache = args.compile_cache.dir();
    let runtime = HookRuntime::new(&RuntimeOptions {
        cache_dir: cache.as_ref().map(|d| d.join("wasm-cache")),
        function_cache_dir: cache.as_ref().map(|d| d.join("wasm-functions")),
        parallel_compile: true,
        held_memory_mib: 1024,
        max_instances: 16,
        measure_cpu: true,
        threads: 0,
    })
    .map_err(|e| local(e.to_string()))?;
    let name = args
        .wasm
        .file_stem()
        .map_or_else(|| "hook".to_owned(), |s| s.to_string_lossy().into_owned());
    let began = std::time::Instant::now();
    let compiled = Arc::new(
        runtime
            .compile(&name, &bytes)
            .map_err(|e| local(format!("{}: {}", args.wasm.display(), e.0)))?,
    );
    runtime
        .check_exports(&compiled)
        .await
        .map_err(|e| local(format!("{}: {}", args.wasm.display(), e.0)))?;
    let compile = Compile {
        took: began.elapsed(),
        cached: runtime.cache_hits() > 0,
        world: compiled.world.name(),
    };
    let config = match &args.config {
        Some(path) => match read_json(path)? {
            Value::Object(map) => map,
            _ => return Err(local("--config: expected a JSON object")),
        },
        None => serde_json::Map::new(),
    };
    let mut kv = KvData::default();
    for entry in &args.kv {
        let (key, value) = entry
            .split_once('=')
            .ok_or_else(|| local(format!("--kv {entry:?}: expected namespace/key=value")))?;
        let (ns, key) = key
            .split_once('/')
            .ok_or_else(|| local(format!("--kv {entry:?}: expected namespace/key=value")))?;
        kv.insert(ns, key, Bytes::from(value.to_owned()));
    }
    let mut secret_stores: Vec<String> = Vec::new();
    for entry in &args.secrets {
        let usage = || {
            local(format!(
                "--secret {entry:?}: expected store/name=value or store/name=@file"
            ))
        };
        let (key, value) = entry.split_once('=').ok_or_else(usage)?;
        let (store, name) = key.split_once('/').ok_or_else(usage)?;
        let value = match value.strip_prefix('@') {
            Some(path) => std::fs::read(path)
                .map_err(|e| local(format!("--secret {key}: reading {path}: {e}")))?,
            None => value.as_bytes().to_vec(),
        };
        kv.set_secret(
            store,
            name,
            wasm::secrets::Secret::new(1, 0, Bytes::from(value)),
        );
        if !secret_stores.iter().any(|s| s == store) {
            secret_stores.push(store.to_owned());
        }
    }
    let (viewer, client, viewer_body) = viewer_request(&args)?;
    let (origin_status, origin_headers, origin_body) = match &args.response {
        Some(path) => {
            let v = read_json(path)?;
            let status = v.get("status").and_then(Value::as_u64).unwrap_or(200);
            let status = u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .ok_or_else(|| local(format!("response.status: {status} is not a status")))?;
            (
                status,
                headers_from(v.get("headers"), "response")?,
                body_from(v.get("body"), "response")?,
            )
        }
        None => {
            let mut headers = HeaderMap::new();
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/html"),
            );
            (StatusCode::OK, headers, Bytes::new())
        }
    };
    if let Some(kib) = args.body_limit_kib
        && !(1..=crate::config::MAX_BODY_LIMIT_KIB).contains(&kib)
    {
        return Err(local(format!(
            "--body-limit-kib: must be between 1 and {}",
            crate::config::MAX_BODY_LIMIT_KIB
        )));
    }
    let association = crate::config::raw::HookRef {
        module: name.clone(),
        config: serde_json::Map::new(),
        cpu_budget_ms: None,
        memory_limit_mib: None,
        include_body: args.include_body,
        body_limit_kib: args.body_limit_kib,
        body_over_limit: args.body_over_limit,
        fetch: (!args.backends.is_empty() || args.fetch_har.is_some()).then(|| {
            crate::config::raw::FetchConfig {
                cache: args.fetch_cache,
                ..Default::default()
            }
        }),
        secret_stores,
    };
    let runner = Runner {
        runtime,
        compiled,
        config: Arc::new(config),
        kv: Arc::new(kv),
        budget: args.cpu_budget_ms.map(Duration::from_millis),
        memory: args
            .memory_limit_mib
            .map_or(wasm::DEFAULT_MEMORY_LIMIT, |m| {
                usize::try_from(m << 20).unwrap_or(usize::MAX)
            }),
        client,
        origins: args.origins.clone(),
        instances: wasm::RequestHooks::default(),
        body: BodyRead::of(&association),
        outbound: match &args.fetch_har {
            Some(har) => Some(Arc::new(Recorder {
                inner: Arc::new(super::har::HarBackends::read(har)?),
                sent: Arc::default(),
            })),
            None => backends(&args.backends)?,
        },
        fetch: wasm::fetch::FetchLimits::of(&association),
        secret_stores: wasm::secret_stores(&association),
        dynamic: dynamic_origins(&args.dynamic_origins)?,
    };

    let mut steps = Vec::new();
    let origin = Origin {
        status: origin_status,
        headers: origin_headers,
        body: origin_body,
    };
    let result = walk(&runner, viewer, viewer_body, &origin, &mut steps).await;
    if args.json {
        let events: Vec<Value> = steps
            .iter()
            .map(|s| {
                let mut v = s.json.clone();
                v["event"] = json!(s.event);
                v
            })
            .collect();
        let mut report = json!({
            "hook": compiled_label(&runner.compiled),
            "world": compile.world,
            "compile": {"ms": millis(compile.took), "cached": compile.cached},
            "events": events,
        });
        match &result {
            Ok(status) => report["status"] = json!(status.as_u16()),
            Err(e) => report["error"] = json!(e.to_string()),
        }
        let text = serde_json::to_string_pretty(&report).map_err(|e| local(e.to_string()))?;
        writeln!(out, "{text}").map_err(|e| local(e.to_string()))?;
        return result.map(|_| ());
    }
    let w = |out: &mut dyn Write, line: String| {
        writeln!(out, "{line}").map_err(|e| local(e.to_string()))
    };
    w(out, format!("hook {}", compiled_label(&runner.compiled)))?;
    w(
        out,
        format!(
            "{:<16} {}, {}",
            "compile",
            compile.world,
            if compile.cached {
                format!(
                    "from the compile cache in {:.3} s",
                    compile.took.as_secs_f64()
                )
            } else {
                format!("compiled in {:.1} s", compile.took.as_secs_f64())
            }
        ),
    )?;
    for step in &steps {
        let mut lines = step.lines.iter();
        if let Some(first) = lines.next() {
            w(out, format!("{:<16} {first}", step.event))?;
        }
        for line in lines {
            w(out, format!("{:<16} {line}", ""))?;
        }
    }
    let status = result?;
    w(out, format!("viewer gets {}", status.as_u16()))
}

/// How the component was compiled, for the report.
struct Compile {
    took: Duration,
    /// Whole, from the on-disk cache.
    cached: bool,
    world: &'static str,
}

fn compiled_label(compiled: &CompiledHook) -> String {
    format!("{}@{}", compiled.name, compiled.version)
}

/// The origin's answer (`--response`).
struct Origin {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// The host's order of events on a miss; the status the viewer would get.
async fn walk(
    runner: &Runner,
    viewer: Exchange,
    mut body: Bytes,
    origin: &Origin,
    steps: &mut Vec<Step>,
) -> Result<StatusCode, CliError> {
    let [
        viewer_request,
        origin_request,
        origin_response,
        viewer_response,
    ] = ORDER;
    let (step, decided) = runner
        .request(viewer_request, "viewer-request", &viewer, &mut body)
        .await?;
    steps.push(step);
    let (ex, status, headers) = match decided {
        Err(answer) => (viewer, answer.status, answer.headers),
        Ok(ex) => {
            let (step, decided) = runner
                .request(origin_request, "origin-request", &ex, &mut body)
                .await?;
            steps.push(step);
            match decided {
                Err(answer) => (ex, answer.status, answer.headers),
                Ok(ex) => {
                    steps.push(Step {
                        event: "origin",
                        json: json!({"outcome": "origin", "origin": ex.target_id, "status": origin.status.as_u16()}),
                        lines: vec![format!("{} answers {} (--response)", ex.target_id, origin.status.as_u16())],
                    });
                    let (step, answer) = runner
                        .response(
                            origin_response,
                            "origin-response",
                            &ex,
                            origin.status,
                            &origin.headers,
                            &origin.body,
                        )
                        .await?;
                    steps.push(step);
                    (ex, answer.status, answer.headers)
                }
            }
        }
    };
    let (step, _) = runner
        .response(
            viewer_response,
            "viewer-response",
            &ex,
            status,
            &headers,
            &Bytes::new(),
        )
        .await?;
    steps.push(step);
    Ok(status)
}
