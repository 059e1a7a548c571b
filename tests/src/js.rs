//! JavaScript hooks: the SDK's npm packages (componentize-js), installed once
//! per test process, and builds of hook modules with them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository root")
        .to_path_buf()
}

/// `guest-sdk/js`, after `npm ci` there if its packages are missing.
pub fn sdk_dir() -> PathBuf {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _once = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = root().join("guest-sdk/js");
    if !dir
        .join("node_modules/@bytecodealliance/componentize-js")
        .exists()
    {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("running npm (Node.js is needed for JavaScript hooks)");
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    dir
}

/// Builds `source` (relative to the repository root, which must hold
/// every module it imports) into the component `out`.
pub fn build(source: &str, out: &Path) {
    let sdk = sdk_dir();
    let output = Command::new("node")
        .arg(sdk.join("build.mjs"))
        .arg(source)
        .arg(out)
        .current_dir(root())
        .output()
        .expect("running node");
    assert!(
        output.status.success(),
        "building {source} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
