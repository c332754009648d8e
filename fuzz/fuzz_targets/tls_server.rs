#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rmmguard_fuzz::tls_server(data));
