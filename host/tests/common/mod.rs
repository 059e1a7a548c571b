//! Running the `edge` binary in tests: start it, talk to it over plain TCP.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const TOKEN: &str = "binary-test-token";

/// A running `edge serve`: the process and its listeners.
pub struct Served {
    pub child: Child,
    pub viewer: SocketAddr,
    pub control: SocketAddr,
}

/// Starts `edge serve` on `dir` with `args` added (listeners default to port
/// 0), and waits until it prints its addresses.
pub fn start(dir: &std::path::Path, args: &[&str]) -> Served {
    start_limited(dir, args, None)
}

/// [`start`], with the process's open-file limit set to `nofile` first
/// (`ulimit -n`, as an operator's service manager would) when given.
pub fn start_limited(dir: &std::path::Path, args: &[&str], nofile: Option<u32>) -> Served {
    let edge = env!("CARGO_BIN_EXE_edge");
    let mut command = match nofile {
        None => Command::new(edge),
        Some(limit) => {
            let mut command = Command::new("bash");
            command
                .args(["-c", r#"ulimit -n "$0" && exec "$@""#])
                .arg(limit.to_string())
                .arg(edge);
            command
        }
    };
    command.arg("serve");
    if !args.contains(&"--listen") {
        command.args(["--listen", "127.0.0.1:0"]);
    }
    let mut child = command
        .args(["--control", "127.0.0.1:0"])
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .args(["--token", TOKEN])
        .env("RUST_LOG", "error")
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
    Served {
        child,
        viewer: viewer.expect("a viewer address"),
        control,
    }
}

/// One HTTP/1.1 request on a new connection: the status and body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
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

/// An origin on a thread that answers every request with `body` after
/// `delay`, with `Cache-Control: cache_control`, and closes.
pub fn origin(body: &'static str, delay: Duration, cache_control: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let _ = stream.read(&mut buf);
                std::thread::sleep(delay);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncache-control: {cache_control}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    addr
}
