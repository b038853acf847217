//! `alpharen sendmail` / argv[0] `sendmail`: the classic local submission
//! command. It writes straight into the spool with the same durable write
//! as the SMTP listener, so it works while the mail service is down, then
//! pokes the service (if running) to deliver at once.
//!
//! Exit codes follow sysexits.h: 0 queued, 64 usage, 65 bad input, 75
//! temporary failure (spool not writable; try again).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::message;
use crate::spool::{Envelope, Origin, Spool};

pub const EX_OK: i32 = 0;
pub const EX_USAGE: i32 = 64;
pub const EX_DATAERR: i32 = 65;
pub const EX_TEMPFAIL: i32 = 75;

/// Parsed command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub from: Option<String>,
    pub full_name: Option<String>,
    pub read_headers: bool,
    pub ignore_dots: bool,
    pub recipients: Vec<String>,
    pub state_dir: Option<PathBuf>,
}

const USAGE: &str = "usage: sendmail [-t] [-i|-oi] [-f sender] [-F name] [--state-dir DIR] [--] [recipient ...] < message";

/// Parses sendmail's options; options of other sendmails that do not
/// change what we do (-oXX, -v, -B, -N, -R, -X, -L, -bm, -m) are accepted
/// and ignored, so existing scripts keep working.
pub fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = args.iter().peekable();
    let value = |it: &mut std::iter::Peekable<std::slice::Iter<String>>, rest: &str, opt: &str| {
        if !rest.is_empty() {
            Ok(rest.to_string())
        } else {
            it.next()
                .cloned()
                .ok_or(format!("option -{opt} needs a value"))
        }
    };
    while let Some(arg) = it.next() {
        if arg == "--" {
            a.recipients.extend(it.by_ref().cloned());
            break;
        }
        if arg == "--state-dir" {
            a.state_dir = Some(PathBuf::from(it.next().ok_or("--state-dir needs a value")?));
            continue;
        }
        if let Some(d) = arg.strip_prefix("--state-dir=") {
            a.state_dir = Some(PathBuf::from(d));
            continue;
        }
        let Some(opt) = arg.strip_prefix('-').filter(|o| !o.is_empty()) else {
            a.recipients.push(arg.clone());
            continue;
        };
        let (c, rest) = opt.split_at(opt.chars().next().map_or(0, char::len_utf8));
        match c {
            "t" if rest.is_empty() => a.read_headers = true,
            "i" if rest.is_empty() => a.ignore_dots = true,
            "f" | "r" => a.from = Some(value(&mut it, rest, c)?),
            "F" => a.full_name = Some(value(&mut it, rest, c)?),
            "o" if rest == "i" => a.ignore_dots = true,
            "o" if !rest.is_empty() => {}
            "b" if rest == "m" => {}
            "b" => {
                return Err(format!(
                    "mode -b{rest} is not supported (only -bm, the default)"
                ));
            }
            "v" | "m" | "U" if rest.is_empty() => {}
            "B" | "N" | "R" | "X" | "L" | "V" | "O" | "h" | "C" | "q" => {
                if rest.is_empty() && c != "q" {
                    it.next();
                }
            }
            _ => return Err(format!("unknown option -{opt}")),
        }
    }
    Ok(a)
}

/// Reads the message: to end of input, or (without -i) up to a line
/// holding a single dot.
pub fn read_message(
    mut input: impl Read,
    ignore_dots: bool,
    limit: u64,
) -> Result<Vec<u8>, String> {
    let mut raw = Vec::new();
    input
        .by_ref()
        .take(limit + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("reading the message: {e}"))?;
    if raw.len() as u64 > limit {
        return Err(format!(
            "message larger than mail.limits.max_message_size ({limit} bytes)"
        ));
    }
    if !ignore_dots {
        let mut pos = 0;
        for line in raw.split_inclusive(|&b| b == b'\n') {
            let t = line.strip_suffix(b"\n").unwrap_or(line);
            let t = t.strip_suffix(b"\r").unwrap_or(t);
            if t == b"." {
                raw.truncate(pos);
                break;
            }
            pos += line.len();
        }
    }
    Ok(message::to_crlf(&raw))
}

fn login_name() -> String {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe_free_uid();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.get(2)? == &uid.to_string()).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| "root".into())
}

/// The caller's uid from /proc (keeps this crate free of unsafe code).
fn unsafe_free_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().and_then(|x| x.parse().ok()))
        })
        .unwrap_or(0)
}

/// Entry for `alpharen sendmail ARGS` and argv[0] `sendmail`. `args`
/// excludes the program name. The state directory is `--state-dir`,
/// `$ALPHAREN_STATE_DIR`, or `/data`.
pub fn sendmail_main(args: &[String]) -> i32 {
    let stdin = std::io::stdin();
    let mut err = std::io::stderr();
    run(args, stdin.lock(), &mut err)
}

pub fn run(args: &[String], input: impl Read, err: &mut impl Write) -> i32 {
    let a = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(err, "sendmail: {e}\n{USAGE}");
            return EX_USAGE;
        }
    };
    let state_dir = a
        .state_dir
        .clone()
        .or_else(|| std::env::var_os("ALPHAREN_STATE_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/data"));
    let (hostname, limit) =
        match alpharen_store::Store::open(&state_dir).and_then(|s| s.current_config()) {
            Ok(c) => (c.node.hostname, c.mail.limits.max_message_size),
            Err(e) => {
                let _ = writeln!(err, "sendmail: cannot read the node configuration: {e}");
                return EX_TEMPFAIL;
            }
        };
    match submit(&a, input, &state_dir, &hostname, limit) {
        Ok(id) => {
            kick(&state_dir);
            let _ = id;
            EX_OK
        }
        Err((code, msg)) => {
            let _ = writeln!(err, "sendmail: {msg}");
            code
        }
    }
}

fn qualify(addr: &str, hostname: &str) -> String {
    if addr.contains('@') {
        addr.to_string()
    } else {
        format!("{addr}@{hostname}")
    }
}

fn submit(
    a: &Args,
    input: impl Read,
    state_dir: &Path,
    hostname: &str,
    limit: u64,
) -> Result<String, (i32, String)> {
    let mut msg = read_message(input, a.ignore_dots, limit).map_err(|e| (EX_DATAERR, e))?;
    let from = qualify(a.from.as_deref().unwrap_or(&login_name()), hostname);
    let from = from
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string();
    let mut to: Vec<String> = Vec::new();
    for r in &a.recipients {
        to.extend(message::header_addresses(r));
    }
    if a.read_headers {
        for (name, value) in message::headers(&msg) {
            if ["to", "cc", "bcc"]
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h))
            {
                to.extend(message::header_addresses(&value));
            }
        }
        msg = message::strip_header(&msg, "Bcc");
    }
    let mut seen = std::collections::HashSet::new();
    let to: Vec<String> = to
        .into_iter()
        .map(|r| qualify(&r, hostname))
        .filter(|r| seen.insert(r.to_ascii_lowercase()))
        .collect();
    if to.is_empty() {
        return Err((
            EX_USAGE,
            format!("no recipients given (name them or use -t)\n{USAGE}"),
        ));
    }
    for addr in to.iter().chain((!from.is_empty()).then_some(&from)) {
        if !alpharen_store::config::is_mail_address(addr) {
            return Err((EX_DATAERR, format!("{addr:?} is not a mail address")));
        }
    }
    let t = crate::now();
    let mut extra = String::new();
    if !message::has_header(&msg, "From") {
        match &a.full_name {
            Some(n) => extra.push_str(&format!(
                "From: \"{}\" <{from}>\r\n",
                n.replace(['"', '\r', '\n'], "")
            )),
            None => extra.push_str(&format!("From: {from}\r\n")),
        }
    }
    let received = format!(
        "Received: by {hostname} (alpharen sendmail, uid {});\r\n\t{}\r\n{extra}",
        unsafe_free_uid(),
        message::rfc5322_date(t)
    );
    let token = format!("{:x}.{:08x}", t, rand::random::<u32>());
    let data = message::stamp(&msg, &received, &token, hostname, t);
    let env = Envelope {
        from,
        to,
        received: t,
        origin: Origin::Sendmail,
    };
    let spool = Spool::open(state_dir).map_err(|e| (EX_TEMPFAIL, e.to_string()))?;
    spool
        .enqueue(&env, &data)
        .map_err(|e| (EX_TEMPFAIL, e.to_string()))
}

/// Tells a running service to look at the queue; silent if it is down.
fn kick(state_dir: &Path) {
    let path = crate::control::socket_path(state_dir);
    if let Ok(mut c) = alpharen_rpc::Client::connect(&path)
        && c.set_timeout(Duration::from_millis(500)).is_ok()
    {
        let _ = c.call("mail.kick", serde_json::json!({}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse_args(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn options() {
        let a = args("-t -oi -f root@n1 -FAdmin -oem a@b -- -c@d").unwrap();
        assert!(a.read_headers && a.ignore_dots);
        assert_eq!(a.from.as_deref(), Some("root@n1"));
        assert_eq!(a.full_name.as_deref(), Some("Admin"));
        assert_eq!(a.recipients, vec!["a@b", "-c@d"]);
        assert_eq!(args("-fx@y").unwrap().from.as_deref(), Some("x@y"));
        assert!(args("-bp").is_err());
        assert!(args("-Z").is_err());
        assert!(args("-f").is_err());
    }

    #[test]
    fn dot_ends_message_unless_i() {
        let m = read_message(&b"a\n.\nb\n"[..], false, 100).unwrap();
        assert_eq!(m, b"a\r\n");
        let m = read_message(&b"a\n.\nb\n"[..], true, 100).unwrap();
        assert_eq!(m, b"a\r\n.\r\nb\r\n");
        assert!(read_message(&[b'x'; 200][..], true, 100).is_err());
    }

    #[test]
    fn end_to_end_into_a_spool() {
        let dir = tempfile::tempdir().unwrap();
        let mut err = Vec::new();
        let a: Vec<String> = ["-t", "--state-dir", dir.path().to_str().unwrap()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let code = run(
            &a,
            &b"To: x@y, Z <z@w>\nBcc: hidden@h\nSubject: s\n\nbody\n"[..],
            &mut err,
        );
        assert_eq!(code, EX_OK, "{}", String::from_utf8_lossy(&err));
        let sp = Spool::open(dir.path()).unwrap();
        let ids = sp.ids(crate::spool::Area::Queue).unwrap();
        let (env, msg) = sp.load(crate::spool::Area::Queue, &ids[0]).unwrap();
        assert_eq!(env.to, vec!["x@y", "z@w", "hidden@h"]);
        assert!(env.from.ends_with("@alpharen"));
        let text = String::from_utf8(msg).unwrap();
        assert!(!text.contains("hidden@h"));
        assert!(text.contains("Message-ID:") && text.contains("From: "));
        let code = run(&a[1..], &b"Subject: s\n\nbody\n"[..], &mut err);
        assert_eq!(code, EX_USAGE);
        let mut b = a.clone();
        b.push("bad address@".into());
        assert_eq!(run(&b[1..], &b"x\n"[..], &mut err), EX_DATAERR);
    }
}
