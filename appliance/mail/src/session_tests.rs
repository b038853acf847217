//! Unit tests of `session.rs`, kept apart so that file stays readable.

use super::*;

fn session() -> Session {
    Session::new(Limits {
        hostname: "n1".into(),
        max_message_size: 100,
        max_recipients: 2,
        max_line_length: 1000,
        max_errors: 5,
        submission: false,
    })
}

fn code(a: &Action) -> String {
    match a {
        Action::Reply(t) | Action::Close(t) | Action::StartData(t) => {
            t.lines().last().unwrap_or("")[..3].to_string()
        }
        Action::Accept(_) => "accept".into(),
        Action::StartTls(_) => "starttls".into(),
        Action::Authenticate { .. } => "authenticate".into(),
    }
}

fn run(s: &mut Session, line: &str) -> String {
    code(&s.command(line.as_bytes(), false))
}

#[test]
fn happy_path_with_dot_unstuffing() {
    let mut s = session();
    assert_eq!(run(&mut s, "EHLO c\r\n"), "250");
    assert_eq!(
        run(&mut s, "MAIL FROM:<a@b> SIZE=50 BODY=8BITMIME\r\n"),
        "250"
    );
    assert_eq!(run(&mut s, "RCPT TO:<c@d>\r\n"), "250");
    assert_eq!(run(&mut s, "DATA\r\n"), "354");
    assert_eq!(s.data_line(b"Subject: x\r\n", false), None);
    assert_eq!(s.data_line(b"..dot\r\n", false), None);
    match s.data_line(b".\r\n", false) {
        Some(Action::Accept(t)) => {
            assert_eq!(t.data, b"Subject: x\r\n.dot\r\n");
            assert_eq!(t.to, vec!["c@d"]);
            assert_eq!(t.from, "a@b");
        }
        other => panic!("{other:?}"),
    }
    // The transaction is over: a new MAIL is not nested.
    assert_eq!(run(&mut s, "MAIL FROM:<>\r\n"), "250");
}

#[test]
fn order_and_syntax_refusals() {
    let mut s = session();
    assert_eq!(run(&mut s, "MAIL FROM:<a@b>\r\n"), "503");
    assert_eq!(run(&mut s, "HELO c\r\n"), "250");
    assert_eq!(run(&mut s, "RCPT TO:<c@d>\r\n"), "503");
    assert_eq!(run(&mut s, "DATA\r\n"), "503");
    assert_eq!(run(&mut s, "FOO\r\n"), "500");
    let mut s = session();
    run(&mut s, "EHLO c\r\n");
    assert!(["501", "553"].contains(&run(&mut s, "MAIL FROM:<nodomain>\r\n").as_str()));
    assert_eq!(run(&mut s, "MAIL FROM:<a@b> SIZE=1000\r\n"), "552");
    assert_eq!(run(&mut s, "MAIL FROM:<a@b> FOO=1\r\n"), "555");
    assert_eq!(run(&mut s, "MAIL FROM:<a@b>\r\n"), "250");
    assert_eq!(run(&mut s, "MAIL FROM:<a@b>\r\n"), "503");
}

#[test]
fn recipients_limits_and_data_without_rcpt() {
    let mut s = session();
    run(&mut s, "EHLO c\r\n");
    run(&mut s, "MAIL FROM:<a@b>\r\n");
    assert_eq!(run(&mut s, "DATA\r\n"), "554");
    assert_eq!(run(&mut s, "RCPT TO:<bad>\r\n"), "501");
    assert_eq!(run(&mut s, "RCPT TO:<é@d>\r\n"), "553");
    assert_eq!(run(&mut s, "RCPT TO:<1@d>\r\n"), "250");
    assert_eq!(run(&mut s, "RCPT TO:<2@d>\r\n"), "250");
    assert_eq!(run(&mut s, "RCPT TO:<3@d>\r\n"), "452");
    let mut s = session();
    run(&mut s, "EHLO c\r\n");
    assert_eq!(run(&mut s, "MAIL FROM:<ö@b> SMTPUTF8\r\n"), "250");
    assert_eq!(run(&mut s, "RCPT TO:<é@d>\r\n"), "250");
}

#[test]
fn oversize_long_lines_and_bare_lf() {
    let mut s = session();
    for l in [
        "EHLO c\r\n",
        "MAIL FROM:<a@b>\r\n",
        "RCPT TO:<c@d>\r\n",
        "DATA\r\n",
    ] {
        run(&mut s, l);
    }
    for _ in 0..20 {
        assert_eq!(s.data_line(b"0123456789\r\n", false), None);
    }
    assert_eq!(code(&s.data_line(b".\r\n", false).unwrap()), "552");
    for l in ["MAIL FROM:<a@b>\r\n", "RCPT TO:<c@d>\r\n", "DATA\r\n"] {
        run(&mut s, l);
    }
    assert_eq!(s.data_line(b"xxxx", true), None);
    assert_eq!(code(&s.data_line(b".\r\n", false).unwrap()), "550");
    for l in ["MAIL FROM:<a@b>\r\n", "RCPT TO:<c@d>\r\n", "DATA\r\n"] {
        run(&mut s, l);
    }
    let a = s.data_line(b"x\n", false).unwrap();
    assert!(matches!(a, Action::Close(_)));
    assert_eq!(code(&a), "521");
}

#[test]
fn too_many_errors_close() {
    let mut s = session();
    for _ in 0..4 {
        assert!(matches!(s.command(b"BAD\r\n", false), Action::Reply(_)));
    }
    let a = s.command(b"BAD\r\n", false);
    assert!(matches!(a, Action::Close(_)));
    assert_eq!(code(&a), "421");
    let mut s = session();
    assert_eq!(code(&s.command(b"EHLO x", true)), "500");
}

fn submission() -> Session {
    let mut s = session();
    s.limits.submission = true;
    s.limits.max_errors = 20;
    s
}

#[test]
fn submission_needs_tls_then_auth_before_mail() {
    let mut s = submission();
    let ehlo = s.command(b"EHLO c\r\n", false);
    assert!(matches!(&ehlo, Action::Reply(t) if t.contains("STARTTLS") && !t.contains("AUTH")));
    assert_eq!(run(&mut s, "AUTH PLAIN AGEAYg==\r\n"), "538");
    assert_eq!(run(&mut s, "MAIL FROM:<a@b>\r\n"), "530");
    assert_eq!(run(&mut s, "STARTTLS\r\n"), "starttls");
    s.tls_started();
    assert_eq!(run(&mut s, "MAIL FROM:<a@b>\r\n"), "503");
    let ehlo = s.command(b"EHLO c\r\n", false);
    assert!(
        matches!(&ehlo, Action::Reply(t) if t.contains("AUTH PLAIN LOGIN") && !t.contains("STARTTLS"))
    );
    assert_eq!(run(&mut s, "STARTTLS\r\n"), "503");
    assert_eq!(run(&mut s, "MAIL FROM:<a@b>\r\n"), "530");
    // "\0alice\0pw"
    let a = s.command(b"AUTH PLAIN AGFsaWNlAHB3\r\n", false);
    assert_eq!(
        a,
        Action::Authenticate {
            user: "alice".into(),
            password: "pw".into()
        }
    );
    assert_eq!(
        code(&s.auth_result("alice".into(), Verdict::Refused)),
        "535"
    );
    assert_eq!(
        code(&s.auth_result("alice".into(), Verdict::RateLimited(30))),
        "454"
    );
    assert_eq!(
        code(&s.auth_result("alice".into(), Verdict::Accepted)),
        "235"
    );
    assert_eq!(s.user(), Some("alice"));
    assert_eq!(run(&mut s, "AUTH PLAIN AGFsaWNlAHB3\r\n"), "503");
    assert_eq!(run(&mut s, "MAIL FROM:<a@b>\r\n"), "250");
}

#[test]
fn auth_login_and_plain_challenges() {
    let mut s = submission();
    s.tls_started();
    run(&mut s, "EHLO c\r\n");
    assert_eq!(run(&mut s, "AUTH LOGIN\r\n"), "334");
    assert_eq!(run(&mut s, "YWxpY2U=\r\n"), "334");
    assert_eq!(
        s.command(b"cHc=\r\n", false),
        Action::Authenticate {
            user: "alice".into(),
            password: "pw".into()
        }
    );
    assert_eq!(run(&mut s, "AUTH PLAIN\r\n"), "334");
    assert_eq!(run(&mut s, "*\r\n"), "501");
    assert_eq!(run(&mut s, "AUTH PLAIN\r\n"), "334");
    assert_eq!(run(&mut s, "not base64!\r\n"), "501");
    // authzid differs from the user: refused.
    assert_eq!(run(&mut s, "AUTH PLAIN Ym9iAGFsaWNlAHB3\r\n"), "501");
    assert_eq!(run(&mut s, "AUTH CRAM-MD5\r\n"), "504");
    let mut loopback = session();
    run(&mut loopback, "EHLO c\r\n");
    assert_eq!(run(&mut loopback, "STARTTLS\r\n"), "502");
    assert_eq!(run(&mut loopback, "AUTH PLAIN AGFsaWNlAHB3\r\n"), "502");
}

#[test]
fn random_sessions_never_break_the_protocol() {
    use rand::{Rng, SeedableRng};
    let words: [&[u8]; 16] = [
        b"EHLO x\r\n",
        b"MAIL FROM:<a@b>\r\n",
        b"RCPT TO:<c@d>\r\n",
        b"DATA\r\n",
        b".\r\n",
        b"STARTTLS\r\n",
        b"AUTH PLAIN AGEAYg==\r\n",
        b"AUTH LOGIN\r\n",
        b"YQ==\r\n",
        b"*\r\n",
        b"RSET\r\n",
        b"hello\n",
        b"\xff\xfe\r\n",
        b"QUIT\r\n",
        b"MAIL FROM:<> SIZE=99999999\r\n",
        b"..dot\r\n",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut accepted = 0;
    for _ in 0..2_000 {
        let mut data = vec![rng.random::<u8>()];
        if rng.random_bool(0.5) {
            // A good loopback transaction first, then noise.
            data[0] &= !1;
            data.extend_from_slice(
                b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\r\n.\r\n",
            );
        }
        for _ in 0..rng.random_range(1..40) {
            if rng.random_bool(0.8) {
                data.extend_from_slice(words[rng.random_range(0..words.len())]);
            } else {
                let n = rng.random_range(0..300);
                data.extend((0..n).map(|_| rng.random::<u8>()));
            }
        }
        accepted += drive(&data);
    }
    assert!(accepted > 0, "the generator never completed a message");
}
