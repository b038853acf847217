//! The SMTP session on arbitrary bytes: never a panic, every reply a CRLF
//! line with a 3-digit code, no accepted message without MAIL, RCPT and
//! DATA. `cargo +nightly fuzz run smtp_session` from the repository's root
//! (tests/e2e/fuzz.sh runs it briefly).
#![no_main]

use alpharen_mail::session::drive;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    drive(data);
});
