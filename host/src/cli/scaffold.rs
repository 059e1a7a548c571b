//! `edge hook new` and `edge hook build`: a plugin (a Rust crate or a
//! JavaScript project) that builds as it is (the SDK and its WIT contract are
//! written beside it, so it needs no checkout of this repository), and its
//! build into a component.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::client::CliError;

/// The SDK's files, as this binary was built with them.
const SDK_FILES: &[(&str, &str)] = &[
    (
        "edge-sdk/src/lib.rs",
        include_str!("../../../guest-sdk/src/lib.rs"),
    ),
    (
        "edge-sdk/src/http.rs",
        include_str!("../../../guest-sdk/src/http.rs"),
    ),
    (
        "edge-sdk/src/choice.rs",
        include_str!("../../../guest-sdk/src/choice.rs"),
    ),
    (
        "edge-sdk/src/runtime.rs",
        include_str!("../../../guest-sdk/src/runtime.rs"),
    ),
    (
        "edge-sdk/wit/hooks.wit",
        include_str!("../../../guest-sdk/wit/hooks.wit"),
    ),
];
/// The JavaScript SDK's files, as this binary was built with them.
const JS_SDK_FILES: &[(&str, &str)] = &[
    ("edge.js", include_str!("../../../guest-sdk/js/edge.js")),
    ("edge.d.ts", include_str!("../../../guest-sdk/js/edge.d.ts")),
    ("build.mjs", include_str!("../../../guest-sdk/js/build.mjs")),
    (
        "wit/hooks.wit",
        include_str!("../../../guest-sdk/wit/hooks.wit"),
    ),
];
/// The JavaScript SDK's manifest (the componentize-js version comes from it).
const JS_SDK_MANIFEST: &str = include_str!("../../../guest-sdk/js/package.json");

/// The language a new plugin is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A Rust crate built for wasm32-wasip2 with the edge-sdk crate.
    Rust,
    /// A JavaScript module built with componentize-js (StarlingMonkey).
    Js,
}

/// The workspace's dependency versions (the SDK's come from here).
const WORKSPACE_MANIFEST: &str = include_str!("../../../Cargo.toml");
/// The examples' lock file: a new plugin starts from versions known to build.
const EXAMPLES_LOCK: &str = include_str!("../../../examples/Cargo.lock");

fn local(message: impl Into<String>) -> CliError {
    CliError::Local(message.into())
}

/// The SDK's own manifest, its dependencies as the workspace pins them.
fn sdk_manifest() -> Result<String, CliError> {
    let mut deps = String::new();
    for name in ["cookie", "getrandom", "wit-bindgen"] {
        let line = WORKSPACE_MANIFEST
            .lines()
            .find(|l| l.starts_with(&format!("{name} =")))
            .ok_or_else(|| local(format!("the SDK's dependency {name} is not pinned")))?;
        // `cookie` comes with the `std` feature, as in the SDK's own manifest.
        match line.strip_prefix("cookie = { ") {
            Some(rest) => deps.push_str(&format!("cookie = {{ optional = true, {rest}")),
            None => deps.push_str(line),
        }
        deps.push('\n');
    }
    Ok(format!(
        r#"[package]
name = "edge-sdk"
description = "Write edge hooks in Rust: the hooks world's bindings, pass-through defaults and helpers."
version = "{version}"
edition = "2024"
publish = false

[lib]
name = "edge_sdk"

[features]
default = ["std"]
# Without it: `no_std`, with the SDK's own allocator and panic handler.
std = ["dep:cookie"]

[dependencies]
{deps}"#,
        // The SDK's version is the workspace's, as this binary's is.
        version = env!("CARGO_PKG_VERSION"),
    ))
}

fn plugin_manifest(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
edge-sdk = {{ path = "edge-sdk" }}

# A plugin is its own workspace.
[workspace]

# Small and quick to instantiate: hooks get a fresh instance per request.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true
debug = false
"#
    )
}

const CARGO_CONFIG: &str = r#"# Hooks are WebAssembly components for wasm32-wasip2. A 64 KiB stack (not
# 1 MiB) keeps what a request touches small, so a fresh instance is cheap.
[build]
target = "wasm32-wasip2"

[target.wasm32-wasip2]
rustflags = ["-C", "link-arg=-zstack-size=65536"]
"#;

fn plugin_source(name: &str) -> String {
    format!(
        r#"//! {name}: an edge hook. Every event has a pass-through default;
//! write only the ones you need.

use std::sync::Mutex;

use edge_sdk::{{Context, Hooks, Request, RequestAction, Response}};

struct Plugin;

/// Where viewer-request sent this request. The host runs the hook in one
/// instance per request: viewer-response of the same request reads what
/// viewer-request kept here, and no other request ever sees it.
static ROUTE: Mutex<&str> = Mutex::new("default");

impl Hooks for Plugin {{
    /// Sends requests marked `x-canary: 1` to the origin `canary`, if the
    /// behavior has one (an origin id it lacks fails the request with 502).
    fn viewer_request(_ctx: Context, req: Request) -> RequestAction {{
        if req.header("x-canary") == Some("1") {{
            if let Ok(mut route) = ROUTE.lock() {{
                *route = "canary";
            }}
            return RequestAction::forward_to(req, "canary");
        }}
        RequestAction::forward(req)
    }}

    /// Says which hook served the response, and where viewer-request sent it.
    fn viewer_response(_ctx: Context, _req: Request, mut resp: Response) -> Response {{
        resp.set_header("x-hook", "{name}");
        if let Ok(route) = ROUTE.lock() {{
            resp.set_header("x-routed", *route);
        }}
        resp
    }}
}}

edge_sdk::export!(Plugin);
"#
    )
}

const SAMPLE_REQUEST: &str = r#"{
  "method": "GET",
  "uri": "/index.html",
  "headers": {"host": "www.example.com", "x-canary": "1"},
  "client_ip": "203.0.113.7"
}
"#;

fn plugin_readme(name: &str) -> String {
    let file = name.replace('-', "_");
    format!(
        r#"# {name}

An edge hook. The loop:

```sh
edge hook build                                   # target/wasm32-wasip2/release/{file}.wasm
edge hook test target/wasm32-wasip2/release/{file}.wasm --request request.json --origins origin,canary
edge hook upload {name} target/wasm32-wasip2/release/{file}.wasm
```

then attach it in a cache behavior of a distribution:
`"hooks": {{"viewer_request": {{"module": "{name}"}}, "viewer_response": {{"module": "{name}"}}}}`.

`edge-sdk/` is the SDK and its WIT contract, as the `edge` binary that wrote
this crate was built with them.
"#
    )
}

fn js_manifest(name: &str) -> Result<String, CliError> {
    let sdk: serde_json::Value = serde_json::from_str(JS_SDK_MANIFEST)
        .map_err(|e| local(format!("the JavaScript SDK's package.json: {e}")))?;
    let manifest = serde_json::json!({
        "name": name,
        "version": "0.1.0",
        "private": true,
        "type": "module",
        "scripts": {"build": "node build.mjs hook.js hook.wasm"},
        "dependencies": sdk["dependencies"],
    });
    serde_json::to_string_pretty(&manifest)
        .map(|text| text + "\n")
        .map_err(|e| local(e.to_string()))
}

fn js_source(name: &str) -> String {
    format!(
        r#"// {name}: an edge hook in JavaScript. Events left out of defineHooks
// pass through; edge.d.ts has the types.
import {{ defineHooks, forward, header, setHeader }} from "./edge.js";

// Where viewerRequest sent this request. The host runs the hook in one
// instance per request: viewerResponse of the same request reads what
// viewerRequest kept here, and no other request ever sees it.
let route = "default";

export const events = defineHooks({{
  // Sends requests marked `x-canary: 1` to the origin `canary`, if the
  // behavior has one (an origin id it lacks fails the request with 502).
  viewerRequest(_ctx, req) {{
    if (header(req, "x-canary") === "1") {{
      route = "canary";
      return forward(req, "canary");
    }}
    return forward(req);
  }},

  // Says which hook served the response, and where viewerRequest sent it.
  viewerResponse(_ctx, _req, resp) {{
    setHeader(resp, "x-hook", "{name}");
    setHeader(resp, "x-routed", route);
    return resp;
  }},
}});
"#
    )
}

fn js_readme(name: &str) -> String {
    format!(
        r#"# {name}

An edge hook in JavaScript. The loop:

```sh
edge hook build                                   # npm install (once), then hook.wasm
edge hook test hook.wasm --request request.json --origins origin,canary
edge hook upload {name} hook.wasm
```

then attach it in a cache behavior of a distribution:
`"hooks": {{"viewer_request": {{"module": "{name}"}}, "viewer_response": {{"module": "{name}"}}}}`.

`edge.js` (with its types in `edge.d.ts`), `build.mjs` and `wit/` are the SDK
and the WIT contract, as the `edge` binary that wrote this project was built
with them. `build.mjs` runs componentize-js from this folder: a module the
hook imports must live under it.
"#
    )
}

/// `edge hook new NAME --lang LANG`: writes the plugin under `parent/NAME`;
/// its path.
pub fn new_plugin(name: &str, parent: &Path, lang: Lang) -> Result<PathBuf, CliError> {
    crate::config::validate_hook_name(name).map_err(|e| local(format!("{name:?}: {e}")))?;
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(local(format!(
            "{name:?}: a plugin's name starts with a letter (it names a crate)"
        )));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(local(format!("{} already exists", dir.display())));
    }
    let files = match lang {
        Lang::Rust => rust_files(name)?,
        Lang::Js => {
            let mut files: Vec<(String, String)> = vec![
                ("package.json".into(), js_manifest(name)?),
                ("hook.js".into(), js_source(name)),
                ("request.json".into(), SAMPLE_REQUEST.to_owned()),
                ("README.md".into(), js_readme(name)),
                (".gitignore".into(), "node_modules/\n*.wasm\n".to_owned()),
            ];
            files.extend(
                JS_SDK_FILES
                    .iter()
                    .map(|(path, text)| ((*path).to_owned(), (*text).to_owned())),
            );
            files
        }
    };
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| local(format!("creating {}: {e}", parent.display())))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| local(format!("writing {}: {e}", path.display())))?;
    }
    Ok(dir)
}

/// A Rust plugin's files.
fn rust_files(name: &str) -> Result<Vec<(String, String)>, CliError> {
    let mut files: Vec<(String, String)> = vec![
        ("Cargo.toml".into(), plugin_manifest(name)),
        ("Cargo.lock".into(), EXAMPLES_LOCK.to_owned()),
        (".cargo/config.toml".into(), CARGO_CONFIG.to_owned()),
        ("src/lib.rs".into(), plugin_source(name)),
        ("request.json".into(), SAMPLE_REQUEST.to_owned()),
        ("README.md".into(), plugin_readme(name)),
        (".gitignore".into(), "/target\n".to_owned()),
        ("edge-sdk/Cargo.toml".into(), sdk_manifest()?),
    ];
    files.extend(
        SDK_FILES
            .iter()
            .map(|(path, text)| ((*path).to_owned(), (*text).to_owned())),
    );
    Ok(files)
}

/// Whether `dir` is a JavaScript plugin: `package.json` and no `Cargo.toml`.
pub fn is_js_plugin(dir: &Path) -> bool {
    !dir.join("Cargo.toml").exists() && dir.join("package.json").exists()
}

/// Runs `npm` with `args` in `dir`.
fn npm(dir: &Path, args: &[&str]) -> Result<(), CliError> {
    let status = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .status()
        .map_err(|e| {
            local(format!(
                "running npm (Node.js is needed for JavaScript hooks): {e}"
            ))
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(local(format!("npm {} failed ({status})", args.join(" "))))
    }
}

/// `npm install` in a JavaScript plugin that has no `node_modules` yet.
fn install_js_plugin(dir: &Path) -> Result<(), CliError> {
    if dir.join("node_modules").exists() {
        return Ok(());
    }
    npm(dir, &["install", "--no-audit", "--no-fund"])
}

/// `edge hook build` for a JavaScript plugin (a folder with `package.json`
/// and no `Cargo.toml`): `npm install` when `node_modules` is missing, then
/// `npm run build`; the `hook.wasm` built.
fn build_js_plugin(dir: &Path) -> Result<PathBuf, CliError> {
    install_js_plugin(dir)?;
    npm(dir, &["run", "--silent", "build"])?;
    let wasm = dir.join("hook.wasm");
    if !wasm.exists() {
        return Err(local(format!(
            "npm run build succeeded, but {} is not there",
            wasm.display()
        )));
    }
    Ok(wasm)
}

/// What starts an answer of `node build.mjs --serve` on its stdout.
const BUILDER_ANSWER: &str = "@@edge-build ";

/// A JavaScript plugin's builder kept running (`node build.mjs --serve`):
/// componentize-js and the WebAssembly it runs load once, so a rebuild takes
/// well under half of a build's time. `edge dev` keeps one per plugin.
#[derive(Debug)]
pub struct WarmBuilder {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    /// The module built and the component written, from the plugin's
    /// `build` script.
    source: PathBuf,
    out: PathBuf,
    /// Builds answered so far.
    builds: u32,
}

/// A build of a [`WarmBuilder`].
#[derive(Debug, Clone)]
pub struct WarmBuild {
    /// The component written.
    pub wasm: PathBuf,
    /// What componentize-js took.
    pub seconds: f64,
    /// Which of the builder's builds it was (1 for the first).
    pub nth: u32,
}

impl WarmBuilder {
    /// The builder of the JavaScript plugin in `dir` (installing its
    /// packages first), when its `build` script is the scaffold's `node
    /// build.mjs SOURCE OUT`; `None` for any other script.
    pub fn start(dir: &Path) -> Result<Option<Self>, CliError> {
        let manifest = dir.join("package.json");
        let text = std::fs::read_to_string(&manifest)
            .map_err(|e| local(format!("reading {}: {e}", manifest.display())))?;
        let package: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| local(format!("{}: {e}", manifest.display())))?;
        let script: Vec<&str> = package["scripts"]["build"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let ["node", "build.mjs", source, out] = script[..] else {
            return Ok(None);
        };
        install_js_plugin(dir)?;
        let mut child = Command::new("node")
            .args(["build.mjs", "--serve"])
            .current_dir(dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| {
                local(format!(
                    "running node (Node.js is needed for JavaScript hooks): {e}"
                ))
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(local("node's stdin and stdout were not piped"));
        };
        Ok(Some(Self {
            child,
            stdin,
            stdout: std::io::BufReader::new(stdout),
            source: dir.join(source),
            out: dir.join(out),
            builds: 0,
        }))
    }

    /// Whether the builder is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Builds the plugin; the component written. A failed build leaves the
    /// builder running; one that stopped is an error (start another).
    pub fn build(&mut self) -> Result<WarmBuild, CliError> {
        use std::io::{BufRead as _, Write as _};
        let request = serde_json::json!({"source": self.source, "out": self.out});
        writeln!(self.stdin, "{request}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| local(format!("the JavaScript builder stopped: {e}")))?;
        let mut line = String::new();
        loop {
            line.clear();
            let read = self
                .stdout
                .read_line(&mut line)
                .map_err(|e| local(format!("the JavaScript builder: {e}")))?;
            if read == 0 {
                return Err(local("the JavaScript builder stopped"));
            }
            let Some(answer) = line.trim_end().strip_prefix(BUILDER_ANSWER) else {
                // What the build printed (the hook's top level runs in it).
                eprint!("{line}");
                continue;
            };
            let answer: serde_json::Value = serde_json::from_str(answer)
                .map_err(|e| local(format!("the JavaScript builder's answer: {e}")))?;
            self.builds += 1;
            return match answer["error"].as_str() {
                Some(error) => Err(local(format!(
                    "building {}: {error}",
                    self.source.display()
                ))),
                None => Ok(WarmBuild {
                    wasm: self.out.clone(),
                    seconds: answer["seconds"].as_f64().unwrap_or_default(),
                    nth: self.builds,
                }),
            };
        }
    }
}

impl Drop for WarmBuilder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The package name in a plugin's `Cargo.toml`.
fn package_name(dir: &Path) -> Result<String, CliError> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| local(format!("reading {}: {e}", manifest.display())))?;
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package
            && let Some(value) = line.strip_prefix("name")
            && let Some(value) = value.trim_start().strip_prefix('=')
        {
            return Ok(value.trim().trim_matches('"').to_owned());
        }
    }
    Err(local(format!(
        "{} has no [package] name",
        manifest.display()
    )))
}

/// `edge hook build`: `cargo build --release` for `wasm32-wasip2` in `dir`
/// (adding the target with rustup when it is missing), or a JavaScript
/// plugin's build; the `.wasm` built.
pub fn build_plugin(dir: &Path, target_dir: Option<&Path>) -> Result<PathBuf, CliError> {
    if is_js_plugin(dir) {
        return build_js_plugin(dir);
    }
    let name = package_name(dir)?;
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(dir)
        .output();
    if let Ok(list) = installed
        && list.status.success()
        && !String::from_utf8_lossy(&list.stdout)
            .lines()
            .any(|t| t.trim() == "wasm32-wasip2")
    {
        let added = Command::new("rustup")
            .args(["target", "add", "wasm32-wasip2"])
            .current_dir(dir)
            .status()
            .map_err(|e| local(format!("running rustup: {e}")))?;
        if !added.success() {
            return Err(local("rustup could not add the wasm32-wasip2 target"));
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(dir);
    if let Some(target_dir) = target_dir {
        build.arg("--target-dir").arg(target_dir);
    }
    let status = build
        .status()
        .map_err(|e| local(format!("running cargo: {e}")))?;
    if !status.success() {
        return Err(local(format!("cargo build failed ({status})")));
    }
    let target = target_dir.map_or_else(|| dir.join("target"), Path::to_path_buf);
    let wasm = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    if !wasm.exists() {
        return Err(local(format!(
            "cargo built, but {} is not there",
            wasm.display()
        )));
    }
    Ok(wasm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_manifest_carries_the_workspace_versions() {
        let manifest = sdk_manifest().expect("manifest");
        assert!(
            manifest.contains("wit-bindgen = { version = "),
            "{manifest}"
        );
        assert!(
            manifest.contains("cookie = { optional = true, version = "),
            "{manifest}"
        );
        assert!(manifest.contains("std = [\"dep:cookie\"]"), "{manifest}");
        assert!(manifest.contains("getrandom = "), "{manifest}");
    }

    #[test]
    fn names_are_checked_and_nothing_is_overwritten() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(new_plugin("../up", dir.path(), Lang::Rust).is_err());
        assert!(new_plugin("9lives", dir.path(), Lang::Rust).is_err());
        let made = new_plugin("canary", dir.path(), Lang::Rust).expect("created");
        assert_eq!(package_name(&made).expect("name"), "canary");
        assert!(made.join("edge-sdk/wit/hooks.wit").exists());
        assert!(new_plugin("canary", dir.path(), Lang::Rust).is_err());
    }

    #[test]
    fn a_javascript_plugin_carries_the_sdk_and_its_pinned_builder() {
        let dir = tempfile::tempdir().expect("temp dir");
        let made = new_plugin("router", dir.path(), Lang::Js).expect("created");
        for file in [
            "hook.js",
            "edge.js",
            "edge.d.ts",
            "build.mjs",
            "wit/hooks.wit",
        ] {
            assert!(made.join(file).exists(), "{file} missing");
        }
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(made.join("package.json")).expect("package.json"),
        )
        .expect("json");
        assert_eq!(manifest["name"], "router");
        let sdk: serde_json::Value = serde_json::from_str(JS_SDK_MANIFEST).expect("json");
        assert_eq!(
            manifest["dependencies"]["@bytecodealliance/componentize-js"],
            sdk["dependencies"]["@bytecodealliance/componentize-js"]
        );
        assert!(!made.join("Cargo.toml").exists());
    }
}
