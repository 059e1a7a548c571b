//! A new user's first minutes, with the `edge` binary as a person runs it: an
//! empty working directory, no flags but the ones README gives, relative
//! paths, the CLI's environment variables, and one command's output piped
//! into the next.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

#[expect(
    dead_code,
    reason = "this test runs the binary its own way and needs only the origin"
)]
mod common;

const EDGE: &str = env!("CARGO_BIN_EXE_edge");

/// Removes the `EDGE_*` variables of the environment the tests run in: a
/// new user has none set.
fn clean(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("EDGE_") {
            command.env_remove(name);
        }
    }
    command
}

/// `edge` with `args` in `cwd`.
fn edge(cwd: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(EDGE);
    command.current_dir(cwd).args(args).env("RUST_LOG", "warn");
    clean(&mut command);
    command
}

/// Runs a shell line in `cwd` with `edge` on PATH, as a user types it.
fn sh(cwd: &Path, line: &str) -> Output {
    let bin = Path::new(EDGE).parent().expect("bin dir");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("bash");
    command
        .current_dir(cwd)
        .args(["-euo", "pipefail", "-c", line])
        .env("PATH", path);
    clean(&mut command).output().expect("bash")
}

/// The output of a shell line that must succeed.
fn sh_ok(cwd: &Path, line: &str) -> String {
    let out = sh(cwd, line);
    assert!(
        out.status.success(),
        "{line}\nstdout: {}\nstderr: {}\nthe host's log: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(cwd.join("serve.log")).unwrap_or_default()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A host started as `edge serve` plus `args` in `cwd`; waits for its
/// listeners, keeps its stderr in `cwd/serve.log`.
struct Host {
    child: Child,
    viewer: SocketAddr,
    control: SocketAddr,
}

impl Host {
    fn start(cwd: &Path, args: &[&str]) -> Self {
        let log = cwd.join("serve.log");
        let mut child = edge(cwd, &["serve"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("edge serve");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut viewer = None;
        let control = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!(
                    "edge serve exited before it listened: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            };
            if let Some(addr) = line.strip_prefix("viewers: http://") {
                viewer = Some(addr.parse().expect("viewer address"));
            }
            if let Some(addr) = line.strip_prefix("control: http://") {
                break addr.parse().expect("control address");
            }
        };
        Self {
            child,
            viewer: viewer.expect("a viewer address"),
            control,
        }
    }

    /// One viewer GET: the status line and the body.
    fn get(&self, host: &str, path: &str) -> (String, String) {
        let (head, body) = self.get_whole(host, path);
        (head.lines().next().unwrap_or_default().to_owned(), body)
    }

    /// One viewer GET: the whole head and the body.
    fn get_whole(&self, host: &str, path: &str) -> (String, String) {
        let mut stream = TcpStream::connect(self.viewer).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
        )
        .expect("write");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("read");
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (head.to_ascii_lowercase(), body.to_owned())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// An empty directory another user could enter (as a home directory is),
/// so only the data dir's own modes keep its secrets.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    dir
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn a_new_user_serves_and_drives_the_host_with_every_default() {
    let web = common::origin("hello from web", Duration::ZERO, "max-age=60");
    let dir = workdir();
    let cwd = dir.path();
    // `edge serve` with no flags at all: ./edge-data, 8080 and 9901.
    let host = Host::start(cwd, &[]);
    let data = cwd.join("edge-data");
    assert_eq!(mode(&data), 0o700);
    for file in ["token", "edge.redb", "host-id"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    if is_root() {
        // Another user can read neither the token nor the store.
        for file in ["edge-data/token", "edge-data/edge.redb"] {
            let read = Command::new("setpriv")
                .args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "cat",
                    file,
                ])
                .current_dir(cwd)
                .output()
                .expect("setpriv");
            assert!(!read.status.success(), "nobody read {file}");
        }
    }

    // A config file in the working directory, created by its relative path;
    // the CLI finds the endpoint and ./edge-data/token by default.
    std::fs::write(
        cwd.join("site.json"),
        format!(
            r#"{{"aliases": ["WWW.First.Test"], "origins": [{{"id": "web", "domain_name": "{web}", "protocol": "http"}}], "default_cache_behavior": {{"target_origin_id": "web"}}}}"#
        ),
    )
    .expect("site.json");
    let id = sh_ok(cwd, "edge dist create --config site.json -o id");
    assert!(id.starts_with('E'), "{id}");
    // The alias was lower-cased, and serves.
    let (status, body) = host.get("www.first.test", "/");
    assert!(status.contains("200"), "{status}");
    assert_eq!(body, "hello from web");
    assert!(sh_ok(cwd, "edge alias list").contains("www.first.test"));

    // get-config's stdout is the document alone, its ETag on stderr: the
    // round trip through a file works as README shows it.
    let etag = sh_ok(
        cwd,
        &format!("edge dist get-config {id} > f.json 2> etag.txt; sed -n 's/^ETag: //p' etag.txt"),
    );
    assert!(etag.starts_with('E'), "{etag}");
    sh_ok(
        cwd,
        &format!("edge dist update {id} --if-match {etag} --config f.json -o id"),
    );
    // -o json output piped straight into update carries its own ETag.
    sh_ok(
        cwd,
        &format!(
            "edge -o json dist get-config {id} > stale.json; edge dist get-config {id} -o json | edge dist update {id} --config -"
        ),
    );
    // The same document again is stale: refused, saying what to do.
    let stale = sh(cwd, &format!("edge dist update {id} --config stale.json"));
    assert_eq!(stale.status.code(), Some(1));
    let err = String::from_utf8_lossy(&stale.stderr);
    assert!(
        err.contains("PreconditionFailed") && err.contains("get-config"),
        "{err}"
    );

    // EDGE_ENDPOINT without a scheme, and the token from EDGE_TOKEN_FILE.
    let listed = sh_ok(
        cwd,
        "EDGE_ENDPOINT=127.0.0.1:9901 EDGE_TOKEN_FILE=edge-data/token edge dist list -o id",
    );
    assert_eq!(listed, id);

    // `edit`: the editor's refused change reopens with the error at the top;
    // the corrected one is applied.
    std::fs::write(
        cwd.join("editor.sh"),
        r#"#!/bin/sh
n=$(cat edits 2>/dev/null || echo 0); echo $((n + 1)) > edits
if [ "$n" = 0 ]; then
    sed -i 's/"target_origin_id": "web"/"target_origin_id": "nope"/' "$1"
else
    grep -q '^# error: .*the ids are: web' "$1" || exit 3
    sed -i 's/"target_origin_id": "nope"/"target_origin_id": "web"/; s/"enabled": true/"enabled": false/' "$1"
fi
"#,
    )
    .expect("editor.sh");
    sh_ok(
        cwd,
        &format!("chmod +x editor.sh; EDITOR=\"$PWD/editor.sh\" edge dist edit {id}"),
    );
    assert_eq!(sh_ok(cwd, "cat edits"), "2");
    let (status, _) = host.get("www.first.test", "/");
    assert!(!status.contains("200"), "disabled, yet {status}");
    sh_ok(cwd, &format!("edge dist enable {id}"));
    assert!(host.get("www.first.test", "/").0.contains("200"));

    // A policy update patches: the weight moves, stickiness stays.
    let staging = sh_ok(cwd, &format!("edge cd create-staging {id} -o id"));
    let policy = sh_ok(
        cwd,
        &format!(
            "edge cd policy create --staging {staging} --weight 10% --idle-ttl 300 --max-ttl 3600 --attach {id} -o id"
        ),
    );
    sh_ok(cwd, &format!("edge cd policy update {policy} --weight 50%"));
    let got: serde_json::Value =
        serde_json::from_str(&sh_ok(cwd, &format!("edge cd policy get {policy} -o json")))
            .expect("JSON");
    let traffic = &got["config"]["traffic"];
    assert_eq!(traffic["weight"], 0.5, "{got}");
    assert_eq!(traffic["session_stickiness"]["idle_ttl"], 300, "{got}");
    assert_eq!(traffic["session_stickiness"]["max_ttl"], 3600, "{got}");
    // Detach, then delete.
    sh_ok(cwd, &format!("edge cd policy detach {id}"));
    sh_ok(cwd, &format!("edge cd policy delete {policy}"));
    assert_eq!(sh_ok(cwd, "edge cd policy list -o id"), "");

    // Elsewhere, without a token: the CLI says where it looked.
    std::fs::create_dir(cwd.join("elsewhere")).expect("mkdir");
    let out = sh(&cwd.join("elsewhere"), "edge dist list");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("edge-data/token") && err.contains("EDGE_TOKEN"),
        "{err}"
    );

    // KV data, listed.
    sh_ok(
        cwd,
        "edge kv put flags beta on && edge kv put flags gamma off",
    );
    let keys = sh_ok(cwd, "edge kv list flags -o id");
    assert_eq!(keys, "beta\ngamma");

    // Logs for a file carry no terminal colours.
    drop(host);
    let log = std::fs::read_to_string(cwd.join("serve.log")).expect("log");
    assert!(!log.contains('\u{1b}'), "{log}");
}

#[test]
fn a_start_up_failure_is_one_line_and_a_hint() {
    let dir = workdir();
    let out = edge(dir.path(), &["serve", "--data-dir", "/proc/edge-data"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("edge serve");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("/proc/edge-data"),
        "{err}"
    );
    assert!(
        lines[1].starts_with("hint: ") && lines[1].contains("--data-dir"),
        "{err}"
    );
    assert!(!err.contains("backtrace"), "{err}");

    // A port another process holds: what to do about it.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").to_string();
    let out = edge(
        dir.path(),
        &[
            "serve",
            "--data-dir",
            "data",
            "--listen",
            &port,
            "--control",
            "127.0.0.1:0",
        ],
    )
    .output()
    .expect("edge serve");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&port) && err.contains("hint: another process listens there"),
        "{err}"
    );
}

#[test]
fn a_relative_data_dir_is_resolved_where_the_host_starts() {
    let dir = workdir();
    std::fs::create_dir(dir.path().join("sub")).expect("sub");
    let host = Host::start(
        dir.path(),
        &[
            "--data-dir",
            "sub/../state",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
        ],
    );
    assert!(dir.path().join("state/edge.redb").exists());
    let (status, _) = host.get("nobody.example", "/");
    assert!(status.contains("421"), "{status}");
    drop(host);
    let log = std::fs::read_to_string(dir.path().join("serve.log")).expect("log");
    assert!(
        !log.contains("Cache directory path has to be absolute"),
        "{log}"
    );
}

/// An origin on a thread whose every answer names the tags `product-<path>`
/// and `site` (`Surrogate-Key`), and counts in its body the requests it got.
fn tagging_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 8192];
            let read = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..read]).into_owned();
            let path = request
                .split(' ')
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_owned();
            let body = format!("{path} #{}", n + 1);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncache-control: max-age=3600\r\nsurrogate-key: product-{path} site\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[test]
fn an_operator_purges_by_tag_from_the_shell() {
    let origin = tagging_origin();
    let dir = workdir();
    let cwd = dir.path();
    let host = Host::start(
        cwd,
        &["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"],
    );
    std::fs::write(
        cwd.join("shop.json"),
        format!(
            r#"{{"aliases": ["shop.test"], "origins": [{{"id": "web", "domain_name": "{origin}", "protocol": "http"}}], "default_cache_behavior": {{"target_origin_id": "web"}}}}"#
        ),
    )
    .expect("shop.json");
    let endpoint = format!("EDGE_ENDPOINT={}", host.control);
    let id = sh_ok(
        cwd,
        &format!("{endpoint} edge dist create --config shop.json -o id"),
    );
    let first = [host.get("shop.test", "/1").1, host.get("shop.test", "/2").1];
    let (head, body) = host.get_whole("shop.test", "/1");
    assert_eq!(body, first[0], "stored");
    assert!(!head.contains("surrogate-key"), "{head}");

    // One product's objects, by the tag the origin gave them.
    let dropped = sh_ok(
        cwd,
        &format!("{endpoint} edge invalidate {id} --tag product-1 -o json | jq -r .dropped"),
    );
    assert_eq!(dropped, "1");
    assert_ne!(host.get("shop.test", "/1").1, first[0]);
    assert_eq!(host.get("shop.test", "/2").1, first[1]);

    // A soft purge of the whole site: marked stale, not dropped; with no
    // validator to revalidate by, the next request refetches.
    let soft = sh_ok(
        cwd,
        &format!(
            "{endpoint} edge invalidate {id} --tag site --soft -o json | jq -r '[.status, .soft, .dropped] | join(\" \")'"
        ),
    );
    assert_eq!(soft, "Completed true 2");
    assert_ne!(host.get("shop.test", "/2").1, first[1]);
    let history = sh_ok(cwd, &format!("{endpoint} edge invalidations {id}"));
    assert!(
        history.contains("TAGS") && history.contains("product-1") && history.contains("2 (soft)"),
        "{history}"
    );

    // Neither paths nor tags: the CLI says what it needs.
    let out = sh(cwd, &format!("{endpoint} edge invalidate {id}"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tag"), "{err}");
}

#[test]
fn a_restarted_host_serves_its_hits_from_a_relative_cache_dir() {
    let origin = tagging_origin();
    let dir = workdir();
    let cwd = dir.path();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--control",
        "127.0.0.1:0",
        "--cache-dir",
        "cache",
    ];
    let host = Host::start(cwd, &args);
    std::fs::write(
        cwd.join("shop.json"),
        format!(
            r#"{{"aliases": ["shop.test"], "origins": [{{"id": "web", "domain_name": "{origin}", "protocol": "http"}}], "default_cache_behavior": {{"target_origin_id": "web"}}}}"#
        ),
    )
    .expect("shop.json");
    let endpoint = format!("EDGE_ENDPOINT={}", host.control);
    sh_ok(
        cwd,
        &format!("{endpoint} edge dist create --config shop.json -o id"),
    );
    let (_, first) = host.get("shop.test", "/1");
    assert!(first.starts_with("1 #"), "{first}");
    // The object reaches the cache dir, where the host was started.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sh_ok(cwd, "find cache/objects -type f | wc -l") != "1" {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing was written to cache/"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(host);

    // Started again the same way: a hit at once, the origin not asked.
    let host = Host::start(cwd, &args);
    let (head, body) = host.get_whole("shop.test", "/1");
    assert_eq!(body, first);
    assert!(head.contains("x-cache: hit from edge"), "{head}");
    let metrics = sh_ok(
        cwd,
        &format!(
            "curl -s -H \"authorization: Bearer $(cat edge-data/token)\" http://{}/metrics | grep '^edge_cache_disk_hits_total'",
            host.control
        ),
    );
    assert_eq!(metrics, "edge_cache_disk_hits_total 1");
}

#[test]
fn a_hook_author_tests_a_hook_twice_and_waits_for_one_compile() {
    // `edge hook test` keeps what it compiled under EDGE_COMPILE_CACHE (a
    // relative folder here, as a person would set it), so the second run of
    // the same component compiles nothing. A component built for the
    // 0.1.0 world is named as such.
    let dir = workdir();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/hooks-0.1.0/request_state.wasm");
    std::fs::copy(&fixture, dir.path().join("state.wasm")).expect("copying the fixture");
    let first = sh_ok(
        dir.path(),
        "EDGE_COMPILE_CACHE=cache edge hook test state.wasm",
    );
    assert!(first.contains("edge:hooks@0.1.0, compiled in"), "{first}");
    assert!(first.contains("+ x-calls: 1"), "{first}");
    assert!(dir.path().join("cache/wasm-cache").is_dir());
    assert!(dir.path().join("cache/wasm-functions").is_dir());
    let second = sh_ok(
        dir.path(),
        "EDGE_COMPILE_CACHE=cache edge hook test state.wasm -o json | jq -r .compile.cached",
    );
    assert_eq!(second, "true");
    // The flag names another folder: compiled afresh there.
    let other = sh_ok(
        dir.path(),
        "edge hook test --compile-cache other state.wasm --json | jq -r .compile.cached",
    );
    assert_eq!(other, "false");
}

/// A WebSocket echo server, as a chat backend is: each text message comes
/// back prefixed with `echo: `.
fn websocket_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let Ok(mut ws) = tungstenite::accept(stream) else {
                    return;
                };
                while let Ok(message) = ws.read() {
                    if let tungstenite::Message::Text(text) = message {
                        let answer = format!("echo: {}", text.as_str());
                        if ws.send(tungstenite::Message::text(answer)).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_websocket_app_is_served_behind_the_host() {
    let origin = websocket_origin();
    let dir = workdir();
    let cwd = dir.path();
    let host = Host::start(
        cwd,
        &["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"],
    );
    std::fs::write(
        cwd.join("chat.json"),
        format!(
            r#"{{"aliases": ["chat.test"], "origins": [{{"id": "app", "domain_name": "{origin}", "protocol": "http"}}], "default_cache_behavior": {{"target_origin_id": "app", "websocket_idle_timeout_seconds": 120}}}}"#
        ),
    )
    .expect("chat.json");
    let endpoint = format!("EDGE_ENDPOINT={}", host.control);
    let id = sh_ok(
        cwd,
        &format!("{endpoint} edge dist create --config chat.json -o id"),
    );
    // What the operator wrote is what `get-config` gives back.
    let idle = sh_ok(
        cwd,
        &format!(
            "{endpoint} edge dist get-config {id} | jq .default_cache_behavior.websocket_idle_timeout_seconds"
        ),
    );
    assert_eq!(idle, "120");

    let stream = TcpStream::connect(host.viewer).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (mut ws, handshake) =
        tungstenite::client::client("ws://chat.test/live", stream).expect("the handshake");
    assert_eq!(handshake.status(), 101);
    for word in ["hello", "world"] {
        ws.send(tungstenite::Message::text(word)).expect("send");
        let answer = ws.read().expect("an answer");
        assert_eq!(answer.to_text().expect("text"), format!("echo: {word}"));
    }
    let open = sh_ok(
        cwd,
        &format!(
            "curl -s -H \"authorization: Bearer $(cat edge-data/token)\" http://{}/metrics | grep '^edge_websockets_open'",
            host.control
        ),
    );
    assert_eq!(open, "edge_websockets_open 1");
    ws.close(None).expect("close");
}

#[test]
fn a_grpc_client_is_told_in_grpc_when_its_origin_is_down() {
    let web = common::origin("over HTTP/1.1", Duration::ZERO, "no-store");
    let gone = TcpListener::bind("127.0.0.1:0").expect("bind");
    let gone_addr = gone.local_addr().expect("address");
    drop(gone);
    let dir = workdir();
    let cwd = dir.path();
    let host = Host::start(
        cwd,
        &["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"],
    );
    std::fs::write(
        cwd.join("api.json"),
        format!(
            r#"{{"aliases": ["api.test"],
                "origins": [{{"id": "web", "domain_name": "{web}", "protocol": "http", "protocol_version": "auto"}},
                            {{"id": "rpc", "domain_name": "{gone_addr}", "protocol": "http", "protocol_version": "h2"}}],
                "default_cache_behavior": {{"target_origin_id": "web"}},
                "cache_behaviors": [{{"path_pattern": "/echo.Echo/*", "target_origin_id": "rpc"}}]}}"#
        ),
    )
    .expect("api.json");
    let endpoint = format!("EDGE_ENDPOINT={}", host.control);
    sh_ok(
        cwd,
        &format!("{endpoint} edge dist create --config api.json -o id"),
    );
    // `auto` in clear speaks HTTP/1.1 to the web origin.
    let (status, body) = host.get("api.test", "/");
    assert!(status.contains("200"), "{status}");
    assert_eq!(body, "over HTTP/1.1");
    // A gRPC call (HTTP/2 by prior knowledge, as gRPC clients speak in
    // clear) to the origin that is down: a gRPC status, not a JSON body.
    let head = sh_ok(
        cwd,
        &format!(
            "curl -s --http2-prior-knowledge -o /dev/null -D - -X POST -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @/dev/null http://{}/echo.Echo/Say -H 'host: api.test' | tr -d '\\r' | grep -E '^(HTTP|grpc-status|x-edge-error)' | sort",
            host.viewer
        ),
    );
    assert_eq!(
        head,
        "HTTP/2 200 \ngrpc-status: 14\nx-edge-error: OriginConnectionFailed"
    );
}

/// An origin of one HTML page, over the compression floor.
fn html_origin(page: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 8192];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\ncache-control: max-age=300\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    addr
}

#[test]
fn a_new_distribution_compresses_for_a_browser() {
    let page: &'static str = Box::leak(
        (0..400)
            .map(|i| format!("<li>item {i}</li>\n"))
            .collect::<String>()
            .into_boxed_str(),
    );
    let origin = html_origin(page);
    let dir = workdir();
    let cwd = dir.path();
    let host = Host::start(
        cwd,
        &["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"],
    );
    std::fs::write(
        cwd.join("site.json"),
        format!(
            r#"{{"aliases": ["site.test"], "origins": [{{"id": "web", "domain_name": "{origin}", "protocol": "http"}}], "default_cache_behavior": {{"target_origin_id": "web"}}}}"#
        ),
    )
    .expect("site.json");
    std::fs::write(cwd.join("page.html"), page).expect("page.html");
    let endpoint = format!("EDGE_ENDPOINT={}", host.control);
    let id = sh_ok(
        cwd,
        &format!("{endpoint} edge dist create --config site.json -o id"),
    );
    // The config a new distribution got says it compresses.
    let compress = sh_ok(
        cwd,
        &format!("{endpoint} edge dist get-config {id} | jq .default_cache_behavior.compress"),
    );
    assert_eq!(compress, "true");
    // curl asks for every encoding it reads and decodes what it gets.
    let url = format!("http://{}/", host.viewer);
    for round in ["Miss", "Hit"] {
        let encoding = sh_ok(
            cwd,
            &format!(
                "curl -s --compressed -H 'host: site.test' -D head.txt -o got.html {url}; cmp got.html page.html; tr -d '\\r' < head.txt | grep -iE '^(content-encoding|x-cache):' | sort"
            ),
        );
        assert_eq!(
            encoding,
            format!("content-encoding: br\nx-cache: {round} from edge")
        );
    }
    // Without --compressed, the page as the origin sent it.
    let plain = sh_ok(
        cwd,
        &format!("curl -s -H 'host: site.test' {url} | cmp - page.html && echo same"),
    );
    assert_eq!(plain, "same");
}
