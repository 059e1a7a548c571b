//! The fuzz targets' committed seed corpora (`fuzz/corpus/<target>/`), run as
//! ordinary tests through the same entry points the fuzzers call, so every
//! input a fuzzer once found stays checked without a fuzzer.

use std::path::PathBuf;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a corpus entry").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("{} breaks an invariant", path.display());
        }
        inputs += 1;
    }
    assert!(
        inputs >= 5,
        "{target}: only {inputs} seeds in {}",
        dir.display()
    );
}

#[test]
fn config_corpus() {
    replay("config", edge::fuzzing::config);
}

#[test]
fn hook_output_corpus() {
    replay("hook_output", edge::fuzzing::hook_output);
}

#[test]
fn cache_control_corpus() {
    replay("cache_control", edge::fuzzing::cache_control);
}

#[test]
fn freshness_corpus() {
    replay("freshness", edge::fuzzing::freshness);
}

#[test]
fn path_corpus() {
    replay("path", edge::fuzzing::path);
}

#[test]
fn request_target_corpus() {
    replay("request_target", edge::fuzzing::request_target);
}

#[test]
fn framing_corpus() {
    replay("framing", edge::fuzzing::framing);
}

#[test]
fn h2_trailers_corpus() {
    replay("h2_trailers", edge::fuzzing::h2_trailers);
}
