//! README is executable: its shell examples run as written against a running `edge demo` (or the host they start) and show what README says.
//!
//! Every ```` ```sh ```` block of README.md and docs/*.md carries a marker on
//! the line right before it: `<!-- readme-test: NAME -->` (a test below runs it, found by
//! NAME) or `<!-- readme-test: skip (why) -->`. A block with neither fails
//! [`every_block_has_a_decision`], so no example is added without deciding how
//! it is tested.
//!
//! A block runs with `bash -euo pipefail` in an empty temporary working
//! directory, `PATH` starting with a folder whose `edge` is the binary under
//! test, one command at a time in one shell (variables carry from one command
//! to the next, and the test checks what each printed). A block that says
//! "with the demo running" gets the `export` line the demo prints run first,
//! as README tells a person to paste it. A block that starts something that
//! runs until stopped (a host, etcd) runs as its own process, stopped with
//! SIGTERM. Where a block needs a file an outside service would write
//! (`shop.json` from `aws cloudfront get-distribution-config`), the test
//! writes it. The only changes made to a block's text are these substitutions:
//!
//! - in a block that starts a host, `0.0.0.0:80` and `127.0.0.1:9901` become
//!   `127.0.0.1:0` (the system picks the ports; the test reads the addresses
//!   the host prints), and `/var/lib/edge` becomes a temporary folder;
//! - in the fleet's block, etcd's `10.0.0.1:2379` becomes a loopback port
//!   chosen at run time (its peer port comes from `ETCD_*` environment
//!   variables), `/var/lib/etcd` a temporary folder, `10.0.1.1:9901`
//!   `127.0.0.1:0`, and the second host started from it is `edge-2`;
//! - in a block that talks to a host, `localhost:8080`/`127.0.0.1:8080` and
//!   `localhost:9901`/`127.0.0.1:9901` get the running host's viewer and
//!   control ports.
//!
//! The demo's own "Try:" lines are examples too: each runs as printed and its
//! comment's claim is checked.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How long one command of a block, or a host's start, may take on a loaded
/// machine before the test gives up.
const PATIENCE: Duration = Duration::from_secs(300);

/// The names of the blocks the tests below run.
const RUN: &[&str] = &[
    "bluegreen",
    "serve",
    "take-over",
    "control-api",
    "fleet",
    "cluster",
    "hook-loop",
    "import-cloudfront",
];

// ---------------------------------------------------------------------------
// README's blocks and their markers

#[derive(Debug)]
struct Block {
    /// Where the opening fence is: `README.md:12`.
    at: String,
    /// `Ok(name)` to run, `Err(reason)` skipped.
    marker: Result<String, String>,
    text: String,
}

/// README.md and docs/*.md, relative to the repository, with their text.
fn pages() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut names = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    names.extend(docs);
    names
        .into_iter()
        .map(|name| {
            let path = root.join(&name);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (name, text)
        })
        .collect()
}

/// Every ```sh block of README and docs/, with its marker; the unmarked ones
/// as errors.
fn blocks() -> (Vec<Block>, Vec<String>) {
    let mut blocks = Vec::new();
    let mut errors = Vec::new();
    for (page, text) in pages() {
        page_blocks(&page, &text, &mut blocks, &mut errors);
    }
    (blocks, errors)
}

fn page_blocks(page: &str, text: &str, blocks: &mut Vec<Block>, errors: &mut Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_start();
        if !fence.starts_with("```") {
            i += 1;
            continue;
        }
        let lang = fence.trim_start_matches('`').trim();
        let start = i;
        i += 1;
        let mut body = String::new();
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            body.push_str(lines[i]);
            body.push('\n');
            i += 1;
        }
        i += 1;
        if !matches!(lang, "sh" | "bash" | "shell" | "console") {
            continue;
        }
        let before = lines[..start]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map_or("", |l| l.trim());
        let marker = before
            .strip_prefix("<!-- readme-test:")
            .and_then(|m| m.strip_suffix("-->"))
            .map(str::trim);
        let marker = match marker {
            Some(m) if m.starts_with("skip") => {
                let reason = m
                    .strip_prefix("skip")
                    .map(str::trim)
                    .and_then(|r| r.strip_prefix('('))
                    .and_then(|r| r.strip_suffix(')'))
                    .unwrap_or("");
                if reason.trim().is_empty() {
                    errors.push(format!(
                        "{page}:{}: a skip marker needs a reason: `<!-- readme-test: skip (why) -->`",
                        start + 1
                    ));
                }
                Err(reason.to_owned())
            }
            Some(name) if !name.is_empty() && !name.contains(' ') => Ok(name.to_owned()),
            _ => {
                errors.push(format!(
                    "{page}:{}: a ```{lang} block without a marker: put `<!-- readme-test: NAME -->` (and a test for NAME in host/tests/readme.rs) or `<!-- readme-test: skip (why) -->` on the line before it",
                    start + 1
                ));
                continue;
            }
        };
        blocks.push(Block {
            at: format!("{page}:{}", start + 1),
            marker,
            text: body,
        });
    }
}

/// The text of the block marked `name`.
fn block(name: &str) -> String {
    let (blocks, _) = blocks();
    let found: Vec<_> = blocks
        .into_iter()
        .filter(|b| b.marker.as_deref() == Ok(name))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "README.md and docs/ should have exactly one block marked `<!-- readme-test: {name} -->`"
    );
    found.into_iter().next().expect("the block").text
}

#[test]
fn every_block_has_a_decision() {
    let (blocks, mut errors) = blocks();
    let mut seen = BTreeMap::new();
    for b in &blocks {
        match &b.marker {
            Ok(name) if !RUN.contains(&name.as_str()) => errors.push(format!(
                "{}: marked `{name}`, which no test in host/tests/readme.rs runs (known: {RUN:?})",
                b.at
            )),
            Ok(name) => {
                if let Some(other) = seen.insert(name.clone(), b.at.clone()) {
                    errors.push(format!("{}: `{name}` marks the block at {other} too", b.at));
                }
            }
            Err(_) => {}
        }
    }
    let missing: BTreeSet<_> = RUN.iter().filter(|n| !seen.contains_key(**n)).collect();
    if !missing.is_empty() {
        errors.push(format!(
            "no README block is marked {missing:?}: a test runs them"
        ));
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    for b in &blocks {
        match &b.marker {
            Ok(name) => eprintln!("{} runs as `{name}`", b.at),
            Err(why) => eprintln!("{} skipped: {why}", b.at),
        }
    }
}

/// README's text adapted for a block that talks to the host at `viewer` and
/// `control` (see the module's documentation).
fn talking_to(text: &str, viewer: SocketAddr, control: SocketAddr) -> String {
    let mut text = text.to_owned();
    for host in ["localhost", "127.0.0.1"] {
        text = text.replace(
            &format!("{host}:8080"),
            &format!("{host}:{}", viewer.port()),
        );
        text = text.replace(
            &format!("{host}:9901"),
            &format!("{host}:{}", control.port()),
        );
    }
    text
}

/// README's text adapted for a block that starts a host with its data in
/// `data_dir`.
fn starting_host(text: &str, data_dir: &Path) -> String {
    text.replace("0.0.0.0:80", "127.0.0.1:0")
        .replace("127.0.0.1:9901", "127.0.0.1:0")
        .replace("/var/lib/edge", &data_dir.display().to_string())
}

/// Splits a block into its commands: a command ends at a line end outside
/// quotes and not after a `\`. Comments are kept.
fn commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let (mut single, mut double) = (false, false);
    for line in text.lines() {
        let mut prev = ' ';
        for c in line.chars() {
            match c {
                '#' if !single && !double && prev.is_whitespace() => break,
                '\'' if !double => single = !single,
                '"' if !single && prev != '\\' => double = !double,
                _ => {}
            }
            prev = c;
        }
        current.push_str(line);
        current.push('\n');
        if !single && !double && !line.trim_end().ends_with('\\') {
            if !current.trim().is_empty() && !current.trim_start().starts_with('#') {
                out.push(std::mem::take(&mut current));
            } else {
                current.clear();
            }
        }
    }
    assert!(
        current.trim().is_empty(),
        "an unterminated command: {current}"
    );
    out
}

// ---------------------------------------------------------------------------
// A person's shell: an empty folder, `edge` on PATH

/// An empty working directory and a `bin` folder whose `edge` is the binary
/// under test.
struct Desk {
    root: tempfile::TempDir,
}

impl Desk {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir(root.path().join("bin")).expect("bin/");
        std::fs::create_dir(root.path().join("work")).expect("work/");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_edge"), root.path().join("bin/edge"))
            .expect("the edge symlink");
        Self { root }
    }

    fn cwd(&self) -> PathBuf {
        self.root.path().join("work")
    }

    /// A command run the way a person's shell runs it: in the working
    /// directory, `edge` first on PATH, no `EDGE_*` settings inherited.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        let path = std::env::var("PATH").unwrap_or_default();
        command.current_dir(self.cwd()).env(
            "PATH",
            format!("{}:{path}", self.root.path().join("bin").display()),
        );
        for (key, _) in std::env::vars() {
            // A person's cargo builds into the crate's own target/ (the
            // plugin loop's paths say so), whatever this test's build uses.
            let build_dir = matches!(
                key.as_str(),
                "CARGO_TARGET_DIR" | "CARGO_BUILD_TARGET_DIR" | "CARGO_BUILD_TARGET"
            );
            if key.starts_with("EDGE_") || key == "RUST_LOG" || build_dir {
                command.env_remove(key);
            }
        }
        command
    }

    fn shell(&self) -> Shell {
        let mut child = self
            .command("bash")
            .args(["-euo", "pipefail", "-s"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting bash");
        let mut stdin = child.stdin.take().expect("bash's stdin");
        // What a command writes to stderr is part of what it shows.
        writeln!(stdin, "exec 2>&1").expect("writing to bash");
        let lines = lines_of(child.stdout.take().expect("bash's stdout"));
        Shell {
            child,
            stdin,
            lines,
        }
    }

    /// Starts a long-running block (a host) in a process group of its own and
    /// waits until it has printed `until`.
    fn background(&self, text: &str, until: &str) -> Background {
        self.background_in(text, &self.cwd(), &[], until)
    }

    /// [`Desk::background`] in `cwd` (another machine's folder) with `env`
    /// added.
    fn background_in(
        &self,
        text: &str,
        cwd: &Path,
        env: &[(&str, String)],
        until: &str,
    ) -> Background {
        let child = self
            .command("bash")
            .args(["-euo", "pipefail", "-c", text])
            .current_dir(cwd)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting bash");
        Background::wait_for(child, text, until)
    }
}

fn lines_of(out: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                // Nobody listens any more; keep draining so the writer never
                // blocks or gets SIGPIPE.
            }
        }
    });
    rx
}

/// One bash that runs a block's commands one by one.
struct Shell {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

const DONE: &str = "__readme_command_done__";

impl Shell {
    /// Runs `command` and returns what it printed (stdout and stderr).
    fn run(&mut self, command: &str) -> String {
        eprintln!("$ {}", command.trim_end());
        // Its own stdin is empty: the shell's is the script.
        write!(
            self.stdin,
            "{{\n{command}\n}} </dev/null\nprintf '\\n{DONE}\\n'\n"
        )
        .expect("writing");
        self.stdin.flush().expect("writing to bash");
        let mut out = String::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line == DONE => break,
                Ok(line) => {
                    out.push_str(&line);
                    out.push('\n');
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("`{command}` did not finish in {PATIENCE:?}; it printed:\n{out}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().expect("bash's exit");
                    panic!("`{command}` failed ({status}); it printed:\n{out}")
                }
            }
        }
        // The newline printed before the marker.
        if out.ends_with("\n\n") || out == "\n" {
            out.pop();
        }
        eprint!("{out}");
        out
    }

    /// Runs every command of `text` in order, handing each command and its
    /// output to `check`.
    fn run_block(&mut self, text: &str, mut check: impl FnMut(&mut Self, &str, &str)) {
        for command in commands(text) {
            let out = self.run(&command);
            check(self, &command, &out);
        }
    }

    /// The value of a shell variable.
    fn var(&mut self, name: &str) -> String {
        self.run(&format!("printf '%s\\n' \"${name}\""))
            .trim()
            .to_owned()
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process started from a block (or by the test) that runs until stopped;
/// SIGTERM on drop.
struct Background {
    child: Child,
    /// What it printed before the line the start waited for, and that line.
    printed: Vec<String>,
    lines: Receiver<String>,
}

impl Background {
    fn wait_for(mut child: Child, what: &str, until: &str) -> Self {
        let lines = lines_of(child.stdout.take().expect("stdout"));
        let deadline = Instant::now() + PATIENCE;
        let mut printed = Vec::new();
        // An empty `until`: nothing to wait for.
        while !until.is_empty() {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    eprintln!("{line}");
                    let done = line.contains(until);
                    printed.push(line);
                    if done {
                        break;
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait();
                    panic!(
                        "`{what}` did not print {until:?} ({e:?}, {status:?}); it printed:\n{}",
                        printed.join("\n")
                    );
                }
            }
        }
        Self {
            child,
            printed,
            lines,
        }
    }

    /// The address on the first printed line starting with `prefix`.
    fn addr(&self, prefix: &str) -> SocketAddr {
        self.printed
            .iter()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.trim().trim_start_matches("http://").split(' ').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix:?} address in {:?}", self.printed))
    }

    /// SIGTERM to the process group, then its exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        self.wait()
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("the process's state") {
                while self.lines.try_recv().is_ok() {}
                return status;
            }
            assert!(Instant::now() < deadline, "the process did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(self.child.try_wait(), Ok(None)) {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &group])
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// The demo

struct Demo {
    process: Background,
    viewer: SocketAddr,
    export: String,
    id: String,
    try_lines: Vec<String>,
}

/// `edge demo` on ports the system picks, started from the desk.
fn demo(desk: &Desk) -> Demo {
    let child = desk
        .command("edge")
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
        ])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting edge demo");
    let process = Background::wait_for(child, "edge demo", "Ctrl-C stops");
    let viewer = process.addr("viewers");
    let export = process
        .printed
        .iter()
        .map(|l| l.trim())
        .find(|l| l.starts_with("export EDGE_ENDPOINT="))
        .expect("the demo prints an export line")
        .to_owned();
    let id = export
        .split(' ')
        .find_map(|kv| kv.strip_prefix("ID="))
        .expect("ID in the export line")
        .to_owned();
    let try_lines = process
        .printed
        .iter()
        .skip_while(|l| l.trim() != "Try:")
        .skip(1)
        .map(|l| l.trim())
        .filter(|l| l.starts_with("curl "))
        .map(str::to_owned)
        .collect();
    Demo {
        process,
        viewer,
        export,
        id,
        try_lines,
    }
}

/// One viewer request on a new connection: status, headers (names
/// lower-cased) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `name=value` of the `Set-Cookie` named `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .find_map(|(_, v)| {
                let pair = v.split(';').next()?.trim();
                pair.starts_with(&format!("{name}="))
                    .then(|| pair.to_owned())
            })
    }
}

fn get(viewer: SocketAddr, host: &str, cookie: Option<&str>) -> Answer {
    get_path(viewer, host, "/", cookie)
}

/// `GET path` on `viewer` for `host`.
fn get_path(viewer: SocketAddr, host: &str, path: &str, cookie: Option<&str>) -> Answer {
    let mut stream = TcpStream::connect_timeout(&viewer, Duration::from_secs(10))
        .expect("connecting to the viewer listener");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("a read timeout");
    let cookie = cookie.map_or(String::new(), |c| format!("cookie: {c}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\n{cookie}connection: close\r\n\r\n"
    )
    .expect("writing");
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .expect("reading the response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn origin(answer: &Answer) -> &str {
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer
        .header("x-origin")
        .expect("x-origin from a demo origin")
}

fn assert_has(out: &str, what: &str, claim: &str) {
    assert!(
        out.to_ascii_lowercase()
            .contains(&what.to_ascii_lowercase()),
        "{claim}: expected {what:?} in:\n{out}"
    );
}

#[test]
fn the_demos_try_lines_show_what_their_comments_say() {
    let desk = Desk::new();
    let demo = demo(&desk);
    assert_eq!(demo.try_lines.len(), 7, "{:?}", demo.try_lines);
    let mut shell = desk.shell();
    for line in &demo.try_lines {
        let comment = line.split_once("  #").map_or("", |(_, c)| c.trim());
        match comment {
            "Miss, then Hit" => {
                let first = shell.run(line);
                assert_has(&first, "x-cache: Miss from edge", comment);
                assert_has(&first, "Hello from the blue origin", comment);
                let second = shell.run(line);
                assert_has(&second, "x-cache: Hit from edge", comment);
                assert_has(&second, "age:", comment);
            }
            "the wildcard alias" => {
                let out = shell.run(line);
                assert_has(&out, "HTTP/1.1 200", comment);
                assert_has(&out, "x-origin: blue", comment);
                assert_has(&out, "path /index.html", comment);
            }
            "green origin, never cached" => {
                let first = shell.run(line);
                let second = shell.run(line);
                for out in [&first, &second] {
                    assert_has(out, "x-origin: green", comment);
                    assert_has(out, "x-cache: Miss from edge", comment);
                    assert_has(out, "cache-control: no-store", comment);
                }
                let body = |out: &str| out.lines().last().unwrap_or("").to_owned();
                assert_ne!(
                    body(&first),
                    body(&second),
                    "{comment}: the same answer twice"
                );
            }
            "421, no such distribution" => {
                let out = shell.run(line);
                assert_has(&out, "HTTP/1.1 421", comment);
                assert_has(&out, "UnknownDistribution", comment);
            }
            "" if line.ends_with("/v1/distributions") => {
                let out = shell.run(line);
                assert_has(&out, &demo.id, "the distribution list");
                assert_has(&out, "www.demo.test", "the distribution list");
            }
            "" if line.ends_with("/config") => {
                let out = shell.run(line);
                assert_has(&out, "HTTP/1.1 200", "the config");
                assert_has(&out, "etag: E", "the config");
                assert_has(&out, "\"www.demo.test\"", "the config");
            }
            "" if line.ends_with("/metrics") => {
                let out = shell.run(line);
                assert_has(&out, "edge_requests_total", "the metrics");
            }
            _ => panic!("the demo prints a Try line this test has no check for: {line}"),
        }
    }
    drop(demo);
}

#[test]
fn blue_green_in_three_commands() {
    let desk = Desk::new();
    let demo = demo(&desk);
    let viewer = demo.viewer;
    let mut shell = desk.shell();
    // "paste the `export` line the demo prints into the second terminal first"
    shell.run(&demo.export);
    let text = talking_to(
        &block("bluegreen"),
        viewer,
        demo.process.addr("control API"),
    );
    let mut step = 0;
    shell.run_block(&text, |shell, command, out| {
        step += 1;
        match step {
            1 => {
                assert!(command.contains("create-staging"), "{command}");
                let staging = shell.var("STAGING");
                assert!(
                    staging.starts_with('E') && staging.len() > 4 && !staging.contains(' '),
                    "STAGING={staging:?}"
                );
                let own = format!("{}.edge.internal", staging.to_ascii_lowercase());
                assert_eq!(
                    origin(&get(viewer, &own, None)),
                    "green",
                    "a staging copy that serves green"
                );
                for _ in 0..20 {
                    assert_eq!(origin(&get(viewer, "www.demo.test", None)), "blue");
                }
            }
            2 => {
                assert!(command.contains("policy create"), "{command}");
                assert_has(out, "10%", "the policy");
                // "about one fresh viewer in ten gets green, and keeps it"
                let mut arms: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for _ in 0..300 {
                    let answer = get(viewer, "www.demo.test", None);
                    let cookie = answer
                        .cookie("edge-cd")
                        .unwrap_or_else(|| panic!("no edge-cd cookie: {:?}", answer.headers));
                    arms.entry(origin(&answer).to_owned())
                        .or_default()
                        .push(cookie);
                }
                let green = arms.get("green").map_or(0, Vec::len);
                let blue = arms.get("blue").map_or(0, Vec::len);
                assert!(
                    green >= 1 && blue >= 200,
                    "300 fresh viewers: {green} green, {blue} blue"
                );
                for (arm, cookies) in &arms {
                    for cookie in cookies.iter().take(3) {
                        for _ in 0..10 {
                            assert_eq!(
                                origin(&get(viewer, "www.demo.test", Some(cookie))),
                                arm,
                                "a viewer keeps its arm ({cookie})"
                            );
                        }
                    }
                }
            }
            3 => {
                assert!(command.contains("promote"), "{command}");
                for _ in 0..50 {
                    assert_eq!(
                        origin(&get(viewer, "www.demo.test", None)),
                        "green",
                        "everyone sees green"
                    );
                }
            }
            _ => panic!("a fourth command in the block: {command}"),
        }
    });
    assert_eq!(step, 3);
}

#[test]
fn a_host_started_as_written_then_taken_over() {
    let desk = Desk::new();
    let data = desk.root.path().join("var-lib-edge");
    let serve = starting_host(&block("serve"), &data);
    // A host without --token generates one and prints its path last.
    let mut old = desk.background(&serve, "token:");
    let viewer = old.addr("viewers:");
    let control = old.addr("control:");
    let token_line = old
        .printed
        .iter()
        .find_map(|l| l.strip_prefix("token:"))
        .expect("a generated token's path is printed")
        .trim()
        .to_owned();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_line).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "{token_line}");
    let health = |addr: SocketAddr| {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        write!(
            stream,
            "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    };
    assert_has(&health(control), "\"ok\"", "/healthz");
    assert_eq!(get(viewer, "nobody.example", None).status, 421);

    // "while the old host runs"
    let take_over = starting_host(&block("take-over"), &data);
    let mut new = desk.background(&take_over, "control: http://");
    assert_eq!(
        new.addr("viewers:"),
        viewer,
        "the new host serves where the old one did"
    );
    assert_eq!(new.addr("control:"), control);
    assert!(old.wait().success(), "the old host drains and exits 0");
    assert_has(&health(control), "\"ok\"", "/healthz after the takeover");
    assert_eq!(get(viewer, "nobody.example", None).status, 421);
    // "SIGTERM ... exits 0"
    assert!(new.stop().success(), "SIGTERM: exit 0");
}

#[test]
fn the_control_api_examples_on_a_host_with_default_flags() {
    // A person's first host: an empty folder, `edge serve` with no flags
    // (the data dir is ./edge-data), the listeners moved by environment.
    let desk = Desk::new();
    let child = desk
        .command("bash")
        .args(["-euo", "pipefail", "-c", "edge serve"])
        .env("EDGE_LISTEN", "127.0.0.1:0")
        .env("EDGE_CONTROL", "127.0.0.1:0")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut host = Background::wait_for(child, "edge serve", "control: http://");
    let viewer = host.addr("viewers:");
    let control = host.addr("control:");
    assert!(
        desk.cwd().join("edge-data/token").is_file(),
        "./edge-data/token"
    );

    let mut shell = desk.shell();
    let text = talking_to(&block("control-api"), viewer, control);
    let mut seen = Vec::new();
    shell.run_block(&text, |shell, command, out| {
        let first = command.lines().next().unwrap_or("");
        if first.starts_with("T=") {
            seen.push("token");
            assert!(shell.var("T").starts_with("Authorization: Bearer "));
        } else if first.starts_with("ID=$(curl") {
            seen.push("create");
            let id = shell.var("ID");
            assert!(id.starts_with('E') && id.len() > 4, "ID={id:?}");
        } else if first.starts_with("curl -si") && first.contains("/config") {
            seen.push("get-config");
            assert_has(out, "HTTP/1.1 200", "get the config");
            assert_has(out, "etag: E", "get the config");
            assert_has(out, "\"www.example.com\"", "get the config");
        } else if first.contains("> new.json") {
            seen.push("edit");
            let edited = std::fs::read_to_string(desk.cwd().join("new.json")).unwrap();
            assert!(edited.contains("v2"), "{edited}");
        } else if first.starts_with("ETAG=") {
            seen.push("etag");
            assert!(shell.var("ETAG").starts_with('E'));
        } else if first.contains("-X PUT") && first.contains("# 200") {
            seen.push("put");
            assert_has(out, "\"v2\"", "the replaced config");
            assert!(!out.contains("\"error\""), "{out}");
        } else if first.contains("-X PUT") && first.contains("# 412") {
            seen.push("stale put");
            assert_has(out, "PreconditionFailed", "a stale If-Match");
        } else {
            panic!("a command of the control API block this test has no check for: {command}");
        }
    });
    assert_eq!(
        seen,
        [
            "token",
            "create",
            "get-config",
            "edit",
            "etag",
            "put",
            "stale put"
        ]
    );
    // The first PUT changed the config, the stale one did not.
    let mut shell = desk.shell();
    let config = shell.run(&talking_to(
        "curl -s -H \"Authorization: Bearer $(cat edge-data/token)\" localhost:9901/v1/distributions",
        viewer,
        control,
    ));
    assert_has(&config, "\"v2\"", "the list after the writes");
    assert!(host.stop().success(), "SIGTERM: exit 0");
}

/// A loopback port free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// An origin answering every request with `hello from the fleet's origin`.
fn hello_origin() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = "hello from the fleet's origin";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-origin: fleet\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// One control API request with the token: status and body.
fn api(control: SocketAddr, token: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream =
        TcpStream::connect_timeout(&control, Duration::from_secs(10)).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: control\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("writing");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("reading");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

#[test]
fn a_fleet_of_two_hosts_on_etcd_as_written() {
    if Command::new("etcd").arg("--version").output().is_err() {
        // scripts/test.sh installs etcd-server; outside it, say so loudly.
        panic!("the fleet's block needs etcd on PATH (apt-get install etcd-server)");
    }
    let desk = Desk::new();
    let text = block("fleet");
    let commands = commands(&text);
    assert_eq!(commands.len(), 2, "etcd, then edge serve: {commands:?}");
    let (client, peer) = (free_port(), free_port());
    let etcd_data = desk.root.path().join("var-lib-etcd");
    let etcd = commands[0]
        .replace("10.0.0.1:2379", &format!("127.0.0.1:{client}"))
        .replace("/var/lib/etcd", &etcd_data.display().to_string());
    let peer_url = format!("http://127.0.0.1:{peer}");
    // etcd logs on stderr; the hosts wait for it, so nothing to wait for here.
    let _etcd = desk.background_in(
        &etcd,
        &desk.cwd(),
        &[
            ("ETCD_LISTEN_PEER_URLS", peer_url.clone()),
            ("ETCD_INITIAL_ADVERTISE_PEER_URLS", peer_url.clone()),
            ("ETCD_INITIAL_CLUSTER", format!("default={peer_url}")),
        ],
        "",
    );
    let token = "a-fleet-token-shared-by-every-host".to_owned();
    let serve = commands[1]
        .replace("10.0.0.1:2379", &format!("127.0.0.1:{client}"))
        .replace("0.0.0.0:80", "127.0.0.1:0")
        .replace("10.0.1.1:9901", "127.0.0.1:0");
    let env = [("EDGE_TOKEN", token.clone())];
    let one = desk.background_in(&serve, &desk.cwd(), &env, "control: http://");
    let machine2 = desk.root.path().join("machine-2");
    std::fs::create_dir(&machine2).unwrap();
    let two = desk.background_in(
        &serve.replace("edge-1", "edge-2"),
        &machine2,
        &env,
        "control: http://",
    );

    // A write through one host is served by the other.
    let origin = hello_origin();
    let (status, body) = api(
        one.addr("control:"),
        &token,
        "POST",
        "/v1/distributions",
        &format!(
            r#"{{"aliases": ["www.fleet.test"], "origins": [{{"id": "web", "domain_name": "{origin}", "protocol": "http"}}], "default_cache_behavior": {{"target_origin_id": "web"}}}}"#
        ),
    );
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let id = created["id"].as_str().expect("an id").to_owned();
    // The other host's watch brings it (within a millisecond, README says;
    // no timing is asserted here).
    let deadline = Instant::now() + PATIENCE;
    let answer = loop {
        let answer = get(two.addr("viewers:"), "www.fleet.test", None);
        if answer.status != 421 || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, "hello from the fleet's origin");
    // `Deployed` once both hosts serve it; both are listed.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = api(
            two.addr("control:"),
            &token,
            "GET",
            &format!("/v1/distributions/{id}"),
            "",
        );
        assert_eq!(status, 200, "{body}");
        if body.contains("\"Deployed\"") && body.contains("edge-1") && body.contains("edge-2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never Deployed on both hosts: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop((one, two));

    // The cache cluster's block, on the same etcd: two members, and a
    // distribution created with the CLI as written; the origin gets one
    // request per object, whichever member the viewer reaches.
    let text = block("cluster");
    let cluster = self::commands(&text);
    assert_eq!(
        cluster.len(),
        2,
        "edge serve, then edge dist create: {cluster:?}"
    );
    let serve = cluster[0]
        .replace("10.0.0.1:2379", &format!("127.0.0.1:{client}"))
        .replace("0.0.0.0:80", "127.0.0.1:0")
        .replace("10.0.1.1:9901", "127.0.0.1:0")
        .replace("10.0.1.1:9902", "127.0.0.1:0");
    let one = desk.background_in(&serve, &desk.cwd(), &env, "cluster: http://");
    let two = desk.background_in(
        &serve.replace("edge-1", "edge-2"),
        &machine2,
        &env,
        "cluster: http://",
    );
    let (origin, fetched) = counting_origin();
    std::fs::write(
        desk.cwd().join("site.json"),
        format!(
            r#"{{"aliases": ["shared.fleet.test"], "cluster": true, "origins": [{{"id": "web", "domain_name": "{origin}", "protocol": "http"}}], "default_cache_behavior": {{"target_origin_id": "web"}}}}"#
        ),
    )
    .expect("site.json");
    let mut shell = desk.shell();
    shell.run(&format!("export EDGE_TOKEN={token}"));
    let create = cluster[1].replace(
        "http://10.0.1.1:9901",
        &format!("http://{}", one.addr("control:")),
    );
    let out = shell.run(&create);
    assert!(out.contains("shared.fleet.test"), "{out}");
    let members = |host: &Background| {
        let (status, text) = api(host.addr("control:"), &token, "GET", "/metrics", "");
        assert_eq!(status, 200);
        text.contains("\nedge_cluster_members 2\n")
    };
    let deadline = Instant::now() + PATIENCE;
    while !(members(&one)
        && members(&two)
        && get_path(two.addr("viewers:"), "shared.fleet.test", "/warm-up", None).status == 200)
    {
        assert!(
            Instant::now() < deadline,
            "the members never saw each other"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = fetched.load(std::sync::atomic::Ordering::SeqCst);
    for i in 0..10 {
        let path = format!("/object/{i}");
        for host in [&one, &two] {
            let answer = get_path(host.addr("viewers:"), "shared.fleet.test", &path, None);
            assert_eq!(answer.status, 200, "{}", answer.body);
            assert_eq!(answer.body, format!("object {path}"));
        }
    }
    assert_eq!(
        fetched.load(std::sync::atomic::Ordering::SeqCst) - before,
        10
    );
    drop((one, two));
}

/// An origin answering `object <path>`, cacheable for an hour, that counts
/// the requests it gets.
fn counting_origin() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let fetched = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = fetched.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let read = stream.read(&mut buf).unwrap_or(0);
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let request = String::from_utf8_lossy(&buf[..read]).into_owned();
            let path = request.split(' ').nth(1).unwrap_or("/").to_owned();
            let body = format!("object {path}");
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncache-control: max-age=3600\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, fetched)
}

#[test]
fn the_plugin_loop_against_the_demo() {
    let desk = Desk::new();
    let demo = demo(&desk);
    let mut shell = desk.shell();
    shell.run(&demo.export);
    let text = talking_to(
        &block("hook-loop"),
        demo.viewer,
        demo.process.addr("control API"),
    );
    let mut seen = Vec::new();
    shell.run_block(&text, |_, command, out| {
        let verb = command
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        match verb.as_str() {
            "edge hook new" => {
                assert!(desk.cwd().join("canary/Cargo.toml").is_file());
                assert!(desk.cwd().join("canary/request.json").is_file());
            }
            "edge hook build" => {
                assert_has(out, "target/wasm32-wasip2/release/canary.wasm", "the build");
                assert!(
                    desk.cwd()
                        .join("canary/target/wasm32-wasip2/release/canary.wasm")
                        .is_file()
                );
            }
            "edge hook test" => {
                assert_has(
                    out,
                    "forward GET /index.html to origin canary",
                    "x-canary: 1",
                );
                assert_has(out, "+ x-hook: canary", "viewer-response");
                assert_has(out, "viewer gets 200", "the outcome");
            }
            "edge hook upload" => assert_has(out, "canary sha256:", "the upload"),
            "edge dist get-config" => {
                let edited = std::fs::read_to_string(desk.cwd().join("canary/dist.json"))
                    .expect("dist.json");
                let edited: serde_json::Value = serde_json::from_str(&edited).expect("JSON");
                assert_eq!(
                    edited["default_cache_behavior"]["hooks"]["viewer_response"]["module"],
                    "canary"
                );
            }
            "edge dist update" => assert_has(out, "Deployed", "the update"),
            _ if command.starts_with("curl") => {
                assert_has(out, "x-hook: canary", "the hook on a viewer's response");
            }
            _ => panic!("a command of the plugin loop this test has no check for: {command}"),
        }
        seen.push(verb);
    });
    assert_eq!(seen.len(), 7, "{seen:?}");
    drop(demo);
}

#[test]
fn importing_from_cloudfront_against_the_demo() {
    let desk = Desk::new();
    let demo = demo(&desk);
    // The demo's blue origin, as `aws cloudfront get-distribution-config`
    // would print a small site on it, with a Lambda@Edge router and WAF.
    let blue = demo
        .process
        .printed
        .iter()
        .find_map(|l| l.trim().strip_prefix("origins      blue http://"))
        .and_then(|r| r.split(' ').next())
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .expect("the blue origin's address");
    let shop = serde_json::json!({
        "ETag": "E1ABCDEF",
        "DistributionConfig": {
            "CallerReference": "site-2024",
            "Aliases": {"Quantity": 1, "Items": ["shop.example.com"]},
            "Origins": {"Quantity": 1, "Items": [{
                "Id": "app", "DomainName": "127.0.0.1", "OriginPath": "/v2",
                "CustomHeaders": {"Quantity": 0},
                "CustomOriginConfig": {"HTTPPort": blue.port(), "HTTPSPort": 443,
                    "OriginProtocolPolicy": "http-only", "OriginReadTimeout": 30,
                    "OriginKeepaliveTimeout": 5}
            }]},
            "DefaultCacheBehavior": {
                "TargetOriginId": "app",
                "ViewerProtocolPolicy": "allow-all",
                "LambdaFunctionAssociations": {"Quantity": 1, "Items": [{
                    "LambdaFunctionARN": "arn:aws:lambda:us-east-1:123456789012:function:router:3",
                    "EventType": "origin-request", "IncludeBody": false}]},
                "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6"
            },
            "Comment": "imported shop",
            "Enabled": true,
            "WebACLId": "arn:aws:wafv2:us-east-1:123456789012:global/webacl/shop/1"
        }
    });
    std::fs::write(desk.cwd().join("shop.json"), shop.to_string()).unwrap();
    let mut shell = desk.shell();
    shell.run(&demo.export);
    let mut step = 0;
    shell.run_block(&block("import-cloudfront"), |_, command, out| {
        step += 1;
        match step {
            1 => {
                assert!(command.contains("--dry-run"), "{command}");
                // "the Edge config and what is left behind"
                assert_has(out, "\"shop.example.com\"", "the Edge config");
                assert_has(out, "function:router:3", "what is left behind");
                assert_has(out, "WebACLId", "what is left behind");
                assert_eq!(
                    get(demo.viewer, "shop.example.com", None).status,
                    421,
                    "created nothing"
                );
            }
            2 => {
                // "creates it; prints the id and the list"
                assert_has(out, "not carried (", "the list");
                assert_has(out, "function:router:3", "the list");
                let answer = get(demo.viewer, "shop.example.com", None);
                assert_eq!(origin(&answer), "blue", "{}", answer.body);
                assert_has(&answer.body, "path /v2/", "the origin path");
            }
            _ => panic!("a third command: {command}"),
        }
    });
    assert_eq!(step, 2);
    drop(demo);
}
