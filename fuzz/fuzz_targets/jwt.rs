#![no_main]
// See shared::fuzzing::jwt for what every input must satisfy.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::jwt(data));
