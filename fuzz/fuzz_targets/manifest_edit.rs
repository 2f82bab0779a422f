//! `cargo +nightly fuzz run manifest_edit`: the manifest engine never panics, and every edit it
//! accepts passes the semantic proof and re-reads to the intended flag state.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        kubeadm_recover::manifest::check_any_input(text);
    }
});
