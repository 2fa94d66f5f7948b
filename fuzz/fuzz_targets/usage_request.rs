#![no_main]
// See shared::fuzzing::usage_request for what every input must satisfy.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::usage_request(data));
