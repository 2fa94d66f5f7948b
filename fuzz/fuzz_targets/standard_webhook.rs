#![no_main]
// See shared::fuzzing::standard_webhook for what every input must satisfy.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::standard_webhook(data));
