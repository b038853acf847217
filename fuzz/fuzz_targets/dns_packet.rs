//! Any bytes as a DNS packet to the dpx server: it must not panic,
//! nothing but a correctly signed, in-policy update may change the zone —
//! which random bytes never are — and a query the UDP answer cache takes
//! gets hickory's own answer from it. Run: `cargo +nightly fuzz run
//! dns_packet` from the repository's root.
#![no_main]

use std::sync::OnceLock;

use alpharen_dpx::harness::Harness;
use libfuzzer_sys::fuzz_target;

fn setup() -> &'static (tokio::runtime::Runtime, Harness) {
    static SETUP: OnceLock<(tokio::runtime::Runtime, Harness)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("dpx-fuzz-{}", std::process::id()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime");
        let harness = Harness::new(&dir).expect("harness store");
        (rt, harness)
    })
}

fuzz_target!(|data: &[u8]| {
    let (rt, harness) = setup();
    let before = harness.state();
    let _ = rt.block_on(harness.handle(data));
    assert_eq!(harness.state(), before);
    if Harness::cacheable(data) {
        let again = rt.block_on(harness.handle(data));
        assert_eq!(again, rt.block_on(harness.uncached(data)));
    }
});
