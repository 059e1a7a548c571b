//! The checks on what a hook hands back.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edge::fuzzing::hook_output(data));
