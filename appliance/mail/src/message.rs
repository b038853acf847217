//! Message text helpers: dates, the headers the node adds, header address
//! lists for `sendmail -t`, and delivery status notifications (RFC 3464).

/// `Tue, 03 Mar 2026 10:04:05 +0000` for a Unix time (UTC).
pub fn rfc5322_date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

/// Byte offset where the body starts (after the blank line), or the length
/// when the message has only headers.
fn header_end(msg: &[u8]) -> usize {
    let mut i = 0;
    while i < msg.len() {
        let end = msg[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(msg.len(), |p| i + p + 1);
        let line = &msg[i..end];
        if line == b"\r\n" || line == b"\n" {
            return end;
        }
        i = end;
    }
    msg.len()
}

/// Unfolded header fields `(name, value)` of a message.
pub fn headers(msg: &[u8]) -> Vec<(String, String)> {
    let head = String::from_utf8_lossy(&msg[..header_end(msg)]);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    out
}

pub fn has_header(msg: &[u8], name: &str) -> bool {
    headers(msg)
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// Removes every field called `name` (with its continuation lines).
pub fn strip_header(msg: &[u8], name: &str) -> Vec<u8> {
    let end = header_end(msg);
    let mut out = Vec::with_capacity(msg.len());
    let mut skipping = false;
    for line in msg[..end].split_inclusive(|&b| b == b'\n') {
        let cont = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !cont {
            skipping = line.len() > name.len()
                && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                && line[name.len()..].trim_ascii_start().first() == Some(&b':');
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&msg[end..]);
    out
}

/// Addresses in a header value such as `"Doe, J" <j@x>, k@y (K)`.
pub fn header_addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut cur, mut quoted, mut depth) = (String::new(), false, 0u32);
    let mut parts = Vec::new();
    for c in value.chars() {
        match c {
            '"' if depth == 0 => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            ',' | ';' if !quoted && depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ if depth == 0 && !quoted => cur.push(c),
            _ => {}
        }
    }
    parts.push(cur);
    for p in parts {
        let p = match (p.find('<'), p.rfind('>')) {
            (Some(a), Some(b)) if a < b => p[a + 1..b].to_string(),
            _ => p,
        };
        // A group name `team:` before its members.
        let p = p.rsplit(':').next().unwrap_or("").trim().to_string();
        if !p.is_empty() {
            out.push(p);
        }
    }
    out
}

/// Turns bare LF line ends into CRLF (sendmail input is local text).
pub fn to_crlf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32);
    let mut prev = 0u8;
    for &b in input {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// What the node prepends to a message it accepts: a Received trace field,
/// and the Date / Message-ID a local client forgot (relays refuse mail
/// without them).
pub fn stamp(msg: &[u8], received: &str, id: &str, hostname: &str, now: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 256);
    out.extend_from_slice(received.as_bytes());
    if !has_header(msg, "Date") {
        out.extend_from_slice(format!("Date: {}\r\n", rfc5322_date(now)).as_bytes());
    }
    if !has_header(msg, "Message-ID") {
        out.extend_from_slice(format!("Message-ID: <{id}@{hostname}>\r\n").as_bytes());
    }
    out.extend_from_slice(msg);
    out
}

/// A plain text mail written by the node.
pub fn compose(
    from: &str,
    to: &[String],
    subject: &str,
    body: &str,
    hostname: &str,
    now: i64,
) -> Vec<u8> {
    let id = format!("{:x}.{:08x}", now, rand::random::<u32>());
    let body = to_crlf(body.as_bytes());
    let mut m = format!(
        "From: {from}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{id}@{hostname}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\
         Auto-Submitted: auto-generated\r\n\r\n",
        to.join(", "),
        subject.replace(['\r', '\n'], " "),
        rfc5322_date(now),
    )
    .into_bytes();
    m.extend_from_slice(&body);
    m
}

/// A delivery status notification (RFC 3464) for recipients that failed
/// for good, carrying the original headers.
pub struct Bounce<'a> {
    pub hostname: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub failed: &'a [String],
    pub reason: &'a str,
    pub original: &'a [u8],
    pub now: i64,
}

impl Bounce<'_> {
    pub fn render(&self) -> Vec<u8> {
        let boundary = format!("{:016x}/{}", rand::random::<u64>(), self.hostname);
        let reason = self.reason.replace(['\r', '\n'], " ");
        let mut m = format!(
            "From: Mail Delivery System <{}>\r\nTo: {}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
             Date: {}\r\nMessage-ID: <{:x}.{:08x}@{}>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\r\n\r\n\
             --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             This is the mail system at {}.\r\n\r\nYour message could not be delivered to:\r\n",
            self.from,
            self.to,
            rfc5322_date(self.now),
            self.now,
            rand::random::<u32>(),
            self.hostname,
            self.hostname,
        );
        for r in self.failed {
            m.push_str(&format!("  <{r}>: {reason}\r\n"));
        }
        m.push_str(&format!(
            "\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; {}\r\n",
            self.hostname
        ));
        for r in self.failed {
            let status = if reason.contains("expired") {
                "4.4.7"
            } else {
                "5.0.0"
            };
            m.push_str(&format!(
                "\r\nFinal-Recipient: rfc822; {r}\r\nAction: failed\r\nStatus: {status}\r\nDiagnostic-Code: smtp; {reason}\r\n"
            ));
        }
        m.push_str(&format!(
            "\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        ));
        let mut out = m.into_bytes();
        out.extend_from_slice(&self.original[..header_end(self.original)]);
        out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_709_251_200),
            "Fri, 01 Mar 2024 00:00:00 +0000"
        );
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn header_parsing_and_stripping() {
        let m = b"To: a@x,\r\n \"B, b\" <b@y>\r\nBcc: hidden@z,\r\n  more@z\r\nSubject: s\r\n\r\nBcc: body@q\r\n";
        let h = headers(m);
        assert_eq!(header_addresses(&h[0].1), vec!["a@x", "b@y"]);
        assert_eq!(header_addresses(&h[1].1), vec!["hidden@z", "more@z"]);
        let s = strip_header(m, "bcc");
        assert_eq!(
            s,
            b"To: a@x,\r\n \"B, b\" <b@y>\r\nSubject: s\r\n\r\nBcc: body@q\r\n".to_vec()
        );
        assert_eq!(header_addresses("team: a@x, b@y;"), vec!["a@x", "b@y"]);
        assert_eq!(header_addresses("k@y (K, the one)"), vec!["k@y"]);
    }

    #[test]
    fn crlf_and_stamp() {
        assert_eq!(to_crlf(b"a\nb\r\nc"), b"a\r\nb\r\nc\r\n");
        let m = stamp(
            b"Subject: x\r\n\r\nhi\r\n",
            "Received: r\r\n",
            "id1",
            "h",
            0,
        );
        let text = String::from_utf8(m).unwrap();
        assert!(text.starts_with("Received: r\r\nDate: Thu, 01 Jan 1970"));
        assert!(text.contains("Message-ID: <id1@h>\r\nSubject: x"));
        let kept = stamp(b"Date: d\r\nMessage-ID: <m>\r\n\r\n", "", "i", "h", 0);
        assert_eq!(kept, b"Date: d\r\nMessage-ID: <m>\r\n\r\n".to_vec());
    }

    #[test]
    fn bounce_is_a_delivery_report() {
        let b = Bounce {
            hostname: "n1",
            from: "MAILER-DAEMON@n1",
            to: "a@b",
            failed: &["x@y".to_string()],
            reason: "550 5.1.1 no such user",
            original: b"Subject: hi\r\n\r\nsecret body\r\n",
            now: 0,
        }
        .render();
        let t = String::from_utf8(b).unwrap();
        assert!(t.contains("report-type=delivery-status"));
        assert!(t.contains("Final-Recipient: rfc822; x@y"));
        assert!(t.contains("Subject: hi"));
        assert!(!t.contains("secret body"));
    }
}
