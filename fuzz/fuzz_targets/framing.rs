//! The viewer-connection watch, differentially against hyper's HTTP/1 server.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| edge::fuzzing::framing(data));
