//! The Cache-Control parser and the storage decision.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edge::fuzzing::cache_control(data));
