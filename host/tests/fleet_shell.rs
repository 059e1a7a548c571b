//! The `edge` binary on a real etcd, started the way a user starts it
//! (an empty working directory, default flags but `--store` and port-0
//! listeners): each host names itself in its data dir, keeps the name across
//! restarts, and a host with a live host's name refuses to start; hosts
//! started with `--cluster-listen` (or `EDGE_CLUSTER_LISTEN`) share one
//! cache.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A real etcd on loopback ports, killed when dropped.
struct Etcd {
    child: Child,
    client: SocketAddr,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Etcd {
    /// Starts etcd on free ports; again on new ones when another process
    /// took one of them before etcd bound it (etcd then exits at once).
    fn start() -> Self {
        for _ in 0..5 {
            if let Some(etcd) = Self::try_start() {
                return etcd;
            }
        }
        panic!("etcd did not become healthy");
    }

    fn try_start() -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let client = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let peer = format!("http://127.0.0.1:{}", free_port());
        let url = format!("http://{client}");
        let child = Command::new("etcd")
            .arg("--name=edge-test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=edge-test={peer}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting etcd (the README's test command installs etcd-server)");
        let mut etcd = Self {
            child,
            client,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok((200, body)) = http(client, "GET", "/health", None, "")
                && body.contains("true")
            {
                return Some(etcd);
            }
            if matches!(etcd.child.try_wait(), Ok(Some(_))) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("etcd did not become healthy");
    }

    fn store(&self) -> String {
        format!("etcd://{}", self.client)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a new connection: the status and body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token.map_or_else(String::new, |t| format!("authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not a response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

/// `edge serve --store <etcd>` run in `cwd`, as a user would type it
/// (listeners on port 0: the hosts share this machine).
fn serve(cwd: &Path, etcd: &Etcd) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edge"));
    command
        .current_dir(cwd)
        .args(["serve", "--store", &etcd.store()])
        .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        .env_remove("EDGE_HOST_ID")
        .env("RUST_LOG", "error");
    command
}

/// A running host: the process, its addresses and its token.
struct Host {
    child: Child,
    /// Kept open: the host prints more after its addresses.
    _stdout: std::io::Lines<BufReader<std::process::ChildStdout>>,
    viewer: SocketAddr,
    control: SocketAddr,
    token: String,
}

impl Host {
    fn start(cwd: &Path, etcd: &Etcd) -> Self {
        Self::spawn(cwd, &mut serve(cwd, etcd))
    }

    /// Runs `command` (an `edge serve` in `cwd`) until it listens.
    fn spawn(cwd: &Path, command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting edge serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut viewer = None;
        let control = loop {
            let line = lines
                .next()
                .expect("edge serve exited before it listened")
                .expect("reading stdout");
            if let Some(addr) = line.strip_prefix("viewers: http://") {
                viewer = Some(addr.parse().expect("viewer address"));
            }
            if let Some(addr) = line.strip_prefix("control: http://") {
                break addr.parse().expect("control address");
            }
        };
        // The default data dir, with the generated token.
        let token = std::fs::read_to_string(cwd.join("edge-data/token"))
            .expect("a generated token")
            .trim()
            .to_owned();
        Self {
            child,
            _stdout: lines,
            viewer: viewer.expect("a viewer address before the control one"),
            control,
            token,
        }
    }

    fn api(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        http(self.control, method, path, Some(&self.token), body).expect("control API")
    }

    /// A clean stop (SIGTERM), waited for.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        assert!(self.child.wait().expect("exit").success());
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kept_id(cwd: &Path) -> String {
    std::fs::read_to_string(cwd.join("edge-data/host-id"))
        .expect("a host-id file")
        .trim()
        .to_owned()
}

/// The ids in a distribution's `hosts`.
fn hosts(host: &Host, id: &str) -> Vec<String> {
    let (status, body) = host.api("GET", &format!("/v1/distributions/{id}"), "");
    assert_eq!(status, 200, "{body}");
    let record: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let mut ids: Vec<String> = record["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| h["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn hosts_started_alike_are_told_apart_and_a_copied_name_is_refused() {
    let etcd = Etcd::start();
    let (cwd_a, cwd_b) = (
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    );
    let a = Host::start(cwd_a.path(), &etcd);
    let b = Host::start(cwd_b.path(), &etcd);
    let (id_a, id_b) = (kept_id(cwd_a.path()), kept_id(cwd_b.path()));
    assert_ne!(id_a, id_b);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(cwd_a.path().join("edge-data/host-id"))
            .expect("host-id")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let config = r#"{"aliases": ["ids.example.com"], "origins": [{"id": "web", "domain_name": "127.0.0.1:9", "protocol": "http"}], "default_cache_behavior": {"target_origin_id": "web"}}"#;
    let (status, body) = a.api("POST", "/v1/distributions", config);
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let dist = created["id"].as_str().expect("id").to_owned();
    let mut both = vec![id_a.clone(), id_b.clone()];
    both.sort();
    let deadline = Instant::now() + Duration::from_secs(10);
    while hosts(&b, &dist) != both {
        assert!(
            Instant::now() < deadline,
            "hosts: {:?}, want {both:?}",
            hosts(&b, &dist)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A host on a copy of B's data dir has B's name: refused while B lives,
    // with one line saying so.
    let cwd_c = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(cwd_c.path().join("edge-data")).expect("data dir");
    std::fs::copy(
        cwd_b.path().join("edge-data/host-id"),
        cwd_c.path().join("edge-data/host-id"),
    )
    .expect("copied");
    let out = serve(cwd_c.path(), &etcd).output().expect("edge serve");
    assert!(!out.status.success(), "a host started under B's name");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "another live host already uses --host-id {id_b}; give this host its own --host-id or remove"
        )),
        "{err}"
    );

    // A restarts under the name it kept.
    a.stop();
    let mut a = Host::start(cwd_a.path(), &etcd);
    assert_eq!(kept_id(cwd_a.path()), id_a);
    assert_eq!(hosts(&a, &dist), both);

    // A new host taking over from A on its data dir has A's name while A
    // still reports under it: it is A's successor, not another host.
    let successor = Host::spawn(cwd_a.path(), serve(cwd_a.path(), &etcd).arg("--take-over"));
    assert!(a.child.wait().expect("exit").success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while hosts(&successor, &dist) != both {
        assert!(
            Instant::now() < deadline,
            "hosts: {:?}, want {both:?}",
            hosts(&successor, &dist)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(b);
}

/// `GET path` for `host` on a viewer listener: the status, `x-cache` and body.
fn get(viewer: SocketAddr, host: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect_timeout(&viewer, Duration::from_secs(2)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let cache = head
        .lines()
        .find_map(|l| l.strip_prefix("x-cache: "))
        .unwrap_or_default()
        .to_owned();
    (status, cache, body.to_owned())
}

/// An origin on a thread answering `object <path>`, cacheable for an hour,
/// that counts the requests for each path.
fn counting_origin() -> (SocketAddr, Arc<Mutex<HashMap<String, usize>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let counts = Arc::new(Mutex::new(HashMap::new()));
    let seen = counts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 8192];
            let read = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..read]).into_owned();
            let path = request.split(' ').nth(1).unwrap_or("/").to_owned();
            *seen
                .lock()
                .expect("counts")
                .entry(path.clone())
                .or_insert(0) += 1;
            let body = format!("object {path}");
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncache-control: max-age=3600\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, counts)
}

/// A metric's value on `host`'s `/metrics`.
fn metric(host: &Host, name: &str) -> u64 {
    let (status, text) = host.api("GET", "/metrics", "");
    assert_eq!(status, 200);
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn members_started_from_the_shell_fetch_each_object_once() {
    // Without a shared store there is no cluster to join: one line says so,
    // and one says what to do.
    let alone = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_edge"))
        .current_dir(alone.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
        ])
        .args(["--cluster-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "error")
        .output()
        .expect("edge serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--cluster-listen needs a shared store"),
        "{err}"
    );
    assert!(err.contains("--store etcd://"), "{err}");

    // A member by flag, and one by environment variable.
    let etcd = Etcd::start();
    let (origin, counts) = counting_origin();
    let (cwd_a, cwd_b) = (
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    );
    let a = Host::spawn(
        cwd_a.path(),
        serve(cwd_a.path(), &etcd).args(["--cluster-listen", "127.0.0.1:0"]),
    );
    let b = Host::spawn(
        cwd_b.path(),
        serve(cwd_b.path(), &etcd).env("EDGE_CLUSTER_LISTEN", "127.0.0.1:0"),
    );
    let config = format!(
        r#"{{"aliases": ["shared.example.com"], "cluster": true, "origins": [{{"id": "web", "domain_name": "{origin}", "protocol": "http"}}], "default_cache_behavior": {{"target_origin_id": "web"}}}}"#
    );
    let (status, body) = a.api("POST", "/v1/distributions", &config);
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let id = created["id"].as_str().expect("id").to_owned();
    let (status, body) = b.api("GET", &format!("/v1/distributions/{id}/config"), "");
    assert_eq!(status, 200, "{body}");
    let kept: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(kept["cluster"], true, "{body}");
    for host in [&a, &b] {
        wait_for("a member never served the distribution", || {
            get(host.viewer, "shared.example.com", "/warm-up").0 == 200
        });
        wait_for("a member never saw the other", || {
            metric(host, "edge_cluster_members") == 2
        });
    }

    for i in 0..20 {
        let path = format!("/object/{i}");
        for host in [&a, &b] {
            let (status, _, body) = get(host.viewer, "shared.example.com", &path);
            assert_eq!((status, body), (200, format!("object {path}")));
        }
    }
    let counts = counts.lock().expect("counts");
    let objects: Vec<usize> = counts
        .iter()
        .filter(|(path, _)| path.starts_with("/object/"))
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(
        objects, [1; 20],
        "origin requests per object for two members"
    );
}
