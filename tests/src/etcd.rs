//! A real etcd for fleet tests.

use std::time::Duration;

use bytes::Bytes;
use edge::HostOptions;
use http::{Request, StatusCode};
use http_body_util::Full;

use crate::HttpClient;

/// A real etcd (the `etcd` on PATH) on loopback ports chosen at run time,
/// with its data in a temp dir; killed when dropped.
#[derive(Debug)]
pub struct Etcd {
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

/// A loopback port free at the time of asking, below the kernel's
/// ephemeral range: while etcd is down for a restart, no port-0 bind and
/// no outgoing connection of another test can take it (one that took the
/// peer port did fail a restart with "address already in use").
fn free_port() -> u16 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    const FLOOR: u16 = 10_000;
    if low > FLOOR + 1_000 {
        for n in 0u64..200 {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(n);
            let port = FLOOR + u16::try_from(hasher.finish() % u64::from(low - FLOOR)).unwrap_or(0);
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Etcd {
    /// Starts etcd and waits until it answers. The ports are free when
    /// chosen, but another process (a host binding port 0) may take one
    /// before etcd binds it: then etcd is started again on new ones.
    pub async fn start() -> Self {
        let mut attempts = 0;
        loop {
            let mut etcd = Self {
                child: None,
                dir: tempfile::tempdir().expect("temp dir"),
                client_port: free_port(),
                peer_port: free_port(),
            };
            match etcd.try_launch().await {
                Ok(()) => return etcd,
                Err(log) if log.contains("address already in use") && attempts < 5 => {
                    attempts += 1;
                    etcd.stop().await;
                }
                Err(log) => panic!("etcd did not become healthy:\n{log}"),
            }
        }
    }

    /// What `--store` names this etcd with.
    pub fn store(&self) -> edge::store::StoreSpec {
        format!("etcd://127.0.0.1:{}", self.client_port)
            .parse()
            .expect("store spec")
    }

    /// Points a host's options at this etcd, naming the host `id` (empty: the
    /// id the host keeps in its data dir), with a two-second lease so a
    /// vanished host leaves the list quickly.
    pub fn configure(&self, opts: &mut HostOptions, id: &str) {
        opts.store = self.store();
        opts.host_id = id.to_owned();
        opts.fleet_lease = Duration::from_secs(2);
    }

    /// Kills etcd (its data stays).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
    }

    /// Starts etcd again on the same ports and data.
    pub async fn restart(&mut self) {
        self.stop().await;
        if let Err(log) = self.try_launch().await {
            panic!("etcd did not become healthy:\n{log}");
        }
    }

    /// Starts etcd and waits until it answers; its log when it does not.
    async fn try_launch(&mut self) -> Result<(), String> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("etcd log");
        let child = std::process::Command::new("etcd")
            .arg("--name=edge-test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=edge-test={peer}"))
            .stdout(log.try_clone().expect("etcd log"))
            .stderr(log)
            .spawn()
            .expect("starting etcd (the README's test command installs etcd-server)");
        self.child = Some(child);
        let health = format!("http://127.0.0.1:{}/health", self.client_port);
        let client = HttpClient::default();
        for _ in 0..200 {
            let req = Request::get(health.as_str())
                .body(Full::new(Bytes::new()))
                .expect("request");
            if let Ok(got) = client.try_send(req).await
                && got.status == StatusCode::OK
                && got.text().contains("true")
            {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default())
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
