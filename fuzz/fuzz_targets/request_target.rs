//! Whole request targets through the path normalization.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edge::fuzzing::request_target(data));
