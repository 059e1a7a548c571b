//! Builds every example hook under `examples/` for `wasm32-wasip2`, so `cargo
//! test` needs no extra step, and generates the list of their paths.
//!
//! The generated `for_each_example!` macro names every example; the hook tests
//! call it with a macro that refers to a test function of the same name, so an
//! example without a test does not compile.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest target, added with rustup when the toolchain lacks it: a
/// toolchain installed before `rust-toolchain.toml` listed the target does not
/// always get it on its own.
fn ensure_guest_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot
        .as_deref()
        .is_some_and(|root| root.join("lib/rustlib/wasm32-wasip2").is_dir());
    if installed {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status();
    match status {
        Ok(s) if s.success() => {}
        _ => panic!(
            "the example hooks need the wasm32-wasip2 target, and `rustup target add wasm32-wasip2` failed: install it and build again"
        ),
    }
}

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let examples = manifest_dir
        .join("../examples")
        .canonicalize()
        .expect("examples/");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let target_dir = out_dir.join("wasm-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    ensure_guest_target();
    let names = members(&examples);
    // One build per example, as its author would build it alone: features are
    // not unified across them (`bluegreen` uses the SDK without `std`, which
    // one build of the whole workspace would turn on for every member).
    for name in &names {
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&examples)
            .args([
                "build",
                "--release",
                "--locked",
                "--target",
                "wasm32-wasip2",
                "-p",
                name,
                "--target-dir",
            ])
            .arg(&target_dir)
            // A 64 KiB stack keeps a fresh instance's touched memory small.
            .env("CARGO_ENCODED_RUSTFLAGS", "-Clink-arg=-zstack-size=65536");
        for var in [
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
            "RUSTFLAGS",
            "CARGO_BUILD_RUSTFLAGS",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
        ] {
            cmd.env_remove(var);
        }
        let status = cmd.status().expect("running cargo for the examples");
        assert!(status.success(), "building the example hook {name} failed");
    }

    let release = target_dir.join("wasm32-wasip2/release");
    let mut generated = String::new();
    let mut list = String::new();
    for name in &names {
        let file = name.replace('-', "_");
        let wasm = release.join(format!("{file}.wasm"));
        assert!(wasm.exists(), "{} was not built", wasm.display());
        writeln!(
            generated,
            "pub const {}: &str = {:?};",
            file.to_uppercase(),
            wasm.display().to_string()
        )
        .expect("formatting into a String");
        writeln!(list, "        $mac!({file});").expect("formatting into a String");
        // Rebuild when any source the example was built from changes.
        if let Ok(deps) = std::fs::read_to_string(release.join(format!("{file}.d"))) {
            for dep in deps.split_whitespace().skip(1) {
                let dep = dep.trim_end_matches(':');
                if Path::new(dep).exists() {
                    println!("cargo:rerun-if-changed={dep}");
                }
            }
        }
    }
    writeln!(
        generated,
        "/// Calls `$mac!(name)` for every example hook.\n#[macro_export]\nmacro_rules! for_each_example {{\n    ($mac:ident) => {{\n{list}    }};\n}}"
    )
    .expect("formatting into a String");
    std::fs::write(out_dir.join("examples.rs"), generated).expect("writing examples.rs");
    println!(
        "cargo:rerun-if-changed={}",
        examples.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        examples.join("Cargo.lock").display()
    );
    for name in &names {
        println!("cargo:rerun-if-changed={}", examples.join(name).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("../guest-sdk").display()
    );
}

/// The `members` of `examples/Cargo.toml`.
fn members(examples: &Path) -> Vec<String> {
    let manifest =
        std::fs::read_to_string(examples.join("Cargo.toml")).expect("examples/Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("a members line in examples/Cargo.toml");
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}
