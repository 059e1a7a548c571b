//! The HTTP/2 trailer watch over arbitrary frames.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edge::fuzzing::h2_trailers(data));
