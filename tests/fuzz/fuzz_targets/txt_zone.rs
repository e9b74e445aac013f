//! `cargo fuzz` entry point; the body and its invariants are in `../bodies.rs`.
#![no_main]

#[path = "../bodies.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::txt_zone(data));
