//! The freshness arithmetic: lifetimes, ages and stale windows at arbitrary times.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edge::fuzzing::freshness(data));
