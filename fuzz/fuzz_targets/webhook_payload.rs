#![no_main]
// See shared::fuzzing::webhook_payload for what every input must satisfy.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::webhook_payload(data));
