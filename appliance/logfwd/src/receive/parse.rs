//! Pure parsers for received syslog: the message formats (RFC 5424 and
//! the BSD format RFC 3164 describes) and RFC 6587 TCP framing (octet
//! counting, or one message per line). Nothing here panics on any input;
//! a randomized test feeds it noise.

/// What a rule looks at in one received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub facility: u8,
    pub severity: u8,
    /// The HOSTNAME field; empty when the line has none (the caller uses
    /// the sender's address).
    pub host: String,
    /// RFC 3164 TAG (without `[pid]`) or RFC 5424 APP-NAME; empty if none.
    pub program: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("no <PRI> at the start")]
    NoPri,
    #[error("PRI out of range (0-191)")]
    BadPri,
    #[error("RFC 5424 header cut short")]
    Short,
    #[error("RFC 5424 structured data not closed")]
    BadStructuredData,
}

/// Longest message taken (RFC 5425 asks receivers for at least 2048;
/// larger frames on TCP are refused, larger datagrams cut here).
pub const MAX_MESSAGE: usize = 16 * 1024;

/// Parses one message (a datagram, or a frame from TCP) of either format.
pub fn parse(raw: &[u8]) -> Result<Message, ParseError> {
    let raw = &raw[..raw.len().min(MAX_MESSAGE)];
    let s = String::from_utf8_lossy(raw);
    let s = s.trim_end_matches(['\n', '\r', '\0']);
    let rest = s.strip_prefix('<').ok_or(ParseError::NoPri)?;
    let end = rest.find('>').ok_or(ParseError::NoPri)?;
    let digits = &rest[..end];
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::NoPri);
    }
    let pri: u16 = digits.parse().map_err(|_| ParseError::NoPri)?;
    if pri > 191 {
        return Err(ParseError::BadPri);
    }
    let (facility, severity) = ((pri >> 3) as u8, (pri & 7) as u8);
    let rest = &rest[end + 1..];
    let (host, program, text) = match rest.strip_prefix("1 ") {
        Some(r) => rfc5424(r)?,
        None => rfc3164(rest),
    };
    Ok(Message {
        facility,
        severity,
        host,
        program,
        text,
    })
}

/// A NILVALUE (`-`) field is empty.
fn field(s: &str) -> String {
    if s == "-" {
        String::new()
    } else {
        s.to_string()
    }
}

/// `TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]` after `<PRI>1 `.
fn rfc5424(s: &str) -> Result<(String, String, String), ParseError> {
    let mut parts = s.splitn(6, ' ');
    let mut next = || parts.next().ok_or(ParseError::Short);
    let _timestamp = next()?;
    let host = field(next()?);
    let app = field(next()?);
    let _procid = next()?;
    let _msgid = next()?;
    let rest = next()?;
    let msg = skip_structured_data(rest)?;
    let msg = msg.strip_prefix(' ').unwrap_or(msg);
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    Ok((host, app, msg.to_string()))
}

/// What follows the STRUCTURED-DATA field: `-`, or `[id k="v" ...]...`
/// with `\"`, `\\` and `\]` escaped inside values.
fn skip_structured_data(s: &str) -> Result<&str, ParseError> {
    if let Some(r) = s.strip_prefix('-') {
        return Ok(r);
    }
    let b = s.as_bytes();
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        let mut quoted = false;
        i += 1;
        loop {
            match b.get(i) {
                None => return Err(ParseError::BadStructuredData),
                Some(b'\\') if quoted => i += 2,
                Some(b'"') => {
                    quoted = !quoted;
                    i += 1;
                }
                Some(b']') if !quoted => {
                    i += 1;
                    break;
                }
                Some(_) => i += 1,
            }
        }
    }
    if i == 0 {
        return Err(ParseError::BadStructuredData);
    }
    // `i` stops after an ASCII `]`: a character boundary.
    s.get(i..).ok_or(ParseError::BadStructuredData)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The length of a leading `Mmm dd hh:mm:ss ` timestamp, if there is one.
fn bsd_timestamp(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let month = s.get(..3)?;
    let clock = |at: usize| {
        let t = b.get(at..at + 8)?;
        let ok = t[2] == b':'
            && t[5] == b':'
            && [0, 1, 3, 4, 6, 7].iter().all(|&k| t[k].is_ascii_digit());
        ok.then_some(at + 8)
    };
    if !MONTHS.contains(&month) || b.get(3) != Some(&b' ') {
        return None;
    }
    let day_ok =
        matches!(b.get(4), Some(b' ' | b'0'..=b'9')) && b.get(5).is_some_and(u8::is_ascii_digit);
    if !day_ok || b.get(6) != Some(&b' ') {
        return None;
    }
    let end = clock(7)?;
    Some(if b.get(end) == Some(&b' ') {
        end + 1
    } else {
        end
    })
}

/// A TAG: what comes before `[pid]:` or `:`, letters, digits and a few
/// punctuation marks (RFC 3164 section 4.1.3, loosened as senders are).
fn tag(word: &str) -> Option<&str> {
    let w = word.strip_suffix(':')?;
    let w = match w.find('[') {
        Some(i) if w.ends_with(']') => &w[..i],
        Some(_) => return None,
        None => w,
    };
    let ok = !w.is_empty()
        && w.len() <= 48
        && w.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'[' && b != b']');
    ok.then_some(w)
}

/// `[TIMESTAMP HOSTNAME ]TAG[pid]: MSG`; what does not fit is all MSG.
/// Without a timestamp there is no HOSTNAME (as relays treat it); with
/// one, the word after it is the HOSTNAME unless it is already the tag
/// (a local sender that left the host name out).
fn rfc3164(s: &str) -> (String, String, String) {
    let mut host = String::new();
    let mut rest = s;
    if let Some(n) = bsd_timestamp(s) {
        rest = &s[n..];
        if let Some((word, after)) = rest.split_once(' ')
            && tag(word).is_none()
            && !word.is_empty()
        {
            host = word.to_string();
            rest = after;
        }
    }
    if let Some((word, after)) = rest.split_once(' ')
        && let Some(t) = tag(word)
    {
        return (host, t.to_string(), after.to_string());
    }
    if let Some(t) = tag(rest) {
        return (host, t.to_string(), String::new());
    }
    (host, String::new(), rest.to_string())
}

/// One step of reading a TCP stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A message at `start..end`; the stream continues at `next`.
    Message {
        start: usize,
        end: usize,
        next: usize,
    },
    /// Not a whole frame yet: read more.
    Incomplete,
    /// The stream cannot be read on (a count too large, a line too long).
    Invalid,
}

/// RFC 6587: a frame that starts with a digit is octet-counted
/// (`LEN SP MSG`); otherwise it ends at LF (non-transparent framing).
pub fn next_frame(buf: &[u8]) -> Frame {
    if buf.first().is_some_and(u8::is_ascii_digit) {
        let Some(sp) = buf.iter().take(7).position(|&b| b == b' ') else {
            return if buf.len() >= 7 || !buf.iter().all(u8::is_ascii_digit) {
                Frame::Invalid
            } else {
                Frame::Incomplete
            };
        };
        let Some(len) = std::str::from_utf8(&buf[..sp])
            .ok()
            .and_then(|d| d.parse::<usize>().ok())
            .filter(|&n| n <= MAX_MESSAGE)
        else {
            return Frame::Invalid;
        };
        let start = sp + 1;
        return if buf.len() >= start + len {
            Frame::Message {
                start,
                end: start + len,
                next: start + len,
            }
        } else {
            Frame::Incomplete
        };
    }
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) => Frame::Message {
            start: 0,
            end: i,
            next: i + 1,
        },
        None if buf.len() > MAX_MESSAGE => Frame::Invalid,
        None => Frame::Incomplete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(f: u8, s: u8, host: &str, program: &str, text: &str) -> Message {
        Message {
            facility: f,
            severity: s,
            host: host.into(),
            program: program.into(),
            text: text.into(),
        }
    }

    #[test]
    fn rfc5424_lines_parse() {
        // RFC 5424 section 6.5, examples 1 and 3 (BOM before MSG in 1).
        assert_eq!(
            parse(b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8"),
            Ok(msg(4, 2, "mymachine.example.com", "su", "'su root' failed for lonvick on /dev/pts/8"))
        );
        assert_eq!(
            parse(br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event log entry..."#),
            Ok(msg(20, 5, "mymachine.example.com", "evntslog", "An application event log entry..."))
        );
        // Escapes inside SD values, two elements, no MSG, NILVALUE host.
        assert_eq!(
            parse(br#"<13>1 - - - - - [a x="q\"]"][b y="\\"]"#),
            Ok(msg(1, 5, "", "", ""))
        );
        // util-linux logger --server (RFC 5424 by default).
        assert_eq!(
            parse(b"<13>1 2026-12-02T19:00:00.123+00:00 web1 alice - - [timeQuality tzKnown=\"1\" isSynced=\"0\"] disk full on /srv\n"),
            Ok(msg(1, 5, "web1", "alice", "disk full on /srv"))
        );
        assert_eq!(
            parse(b"<13>1 2026-12-02T19:00:00Z web1 app"),
            Err(ParseError::Short)
        );
        assert_eq!(
            parse(b"<13>1 - h a - - [x y=\"1\" msg"),
            Err(ParseError::BadStructuredData)
        );
        assert_eq!(
            parse(b"<13>1 - h a - - x msg"),
            Err(ParseError::BadStructuredData)
        );
    }

    #[test]
    fn rfc3164_lines_parse() {
        // RFC 3164 section 5.4, example 1.
        assert_eq!(
            parse(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8"),
            Ok(msg(
                4,
                2,
                "mymachine",
                "su",
                "'su root' failed for lonvick on /dev/pts/8"
            ))
        );
        assert_eq!(
            parse(b"<38>Dec  2 19:00:01 gw sshd[4242]: Failed password for root from 10.0.0.1"),
            Ok(msg(
                4,
                6,
                "gw",
                "sshd",
                "Failed password for root from 10.0.0.1"
            ))
        );
        // logger --rfc3164 leaves the host name out on some versions.
        assert_eq!(
            parse(b"<13>Dec  2 19:00:01 alice: hello"),
            Ok(msg(1, 5, "", "alice", "hello"))
        );
        // No timestamp: no host name either; a tag still counts.
        assert_eq!(
            parse(b"<13>cron[1]: tick"),
            Ok(msg(1, 5, "", "cron", "tick"))
        );
        // RFC 3164 section 5.4 example 2: no tag at all.
        assert_eq!(
            parse(b"<13>Use the BFG!"),
            Ok(msg(1, 5, "", "", "Use the BFG!"))
        );
        assert_eq!(parse(b"<0>"), Ok(msg(0, 0, "", "", "")));
        assert_eq!(parse(b"no pri"), Err(ParseError::NoPri));
        assert_eq!(parse(b"<>x"), Err(ParseError::NoPri));
        assert_eq!(parse(b"<192>x"), Err(ParseError::BadPri));
        assert_eq!(parse(b"<0013>x"), Err(ParseError::NoPri));
    }

    #[test]
    fn tcp_frames_are_octet_counted_or_lines() {
        assert_eq!(
            next_frame(b"5 <13>a6 <13>bc"),
            Frame::Message {
                start: 2,
                end: 7,
                next: 7
            }
        );
        assert_eq!(next_frame(b"5 <13"), Frame::Incomplete);
        assert_eq!(next_frame(b"12"), Frame::Incomplete);
        assert_eq!(next_frame(b"1234567"), Frame::Invalid);
        assert_eq!(next_frame(b"99999 x"), Frame::Invalid);
        assert_eq!(next_frame(b"1x <13>"), Frame::Invalid);
        assert_eq!(
            next_frame(b"<13>a\n<13>b"),
            Frame::Message {
                start: 0,
                end: 5,
                next: 6
            }
        );
        assert_eq!(next_frame(b"<13>a"), Frame::Incomplete);
        assert_eq!(next_frame(&[b'x'; MAX_MESSAGE + 1]), Frame::Invalid);
    }

    #[test]
    fn random_input_never_panics() {
        // A small xorshift: the same noise on every run, no extra crate.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"<>[]\"\\ -:0123456789aZ1\n\xef\xbb\xbfOct Dec";
        for _ in 0..20_000 {
            let len = (next() % 80) as usize;
            let mut buf = Vec::with_capacity(len + 8);
            if next() % 2 == 0 {
                buf.extend_from_slice(if next() % 2 == 0 {
                    b"<13>1 "
                } else {
                    b"<13>Dec  2 "
                });
            }
            for _ in 0..len {
                let r = next();
                buf.push(if r % 4 == 0 {
                    (r >> 8) as u8
                } else {
                    alphabet[(r >> 8) as usize % alphabet.len()]
                });
            }
            let _ = parse(&buf);
            if let Frame::Message { start, end, next } = next_frame(&buf) {
                assert!(start <= end && end <= next && next <= buf.len());
            }
        }
    }
}
