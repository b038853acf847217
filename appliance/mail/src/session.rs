//! The SMTP server conversation without I/O: command lines in, replies
//! out. Parsing is `smtp-proto`'s; the decisions (order of commands, limits,
//! refusal codes) are here so they are unit-tested line by line.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use smtp_proto::{
    AUTH_LOGIN, AUTH_PLAIN, Error as ParseError, MAIL_BODY_BINARYMIME, MAIL_SMTPUTF8, Request,
};

/// Limits of one session, from `[mail.limits]`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub hostname: String,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_line_length: usize,
    pub max_errors: u32,
    /// The LAN submission listener: STARTTLS first, then AUTH, then mail.
    pub submission: bool,
}

/// A complete transaction ready to be spooled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub helo: String,
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this reply (one or more lines, CRLF-terminated) and go on.
    Reply(String),
    /// Send and close the connection.
    Close(String),
    /// Switch to reading message text (the 354 is in the reply).
    StartData(String),
    /// Spool the transaction, then answer 250 (or 451 if that fails).
    Accept(Transaction),
    /// Send the 220, then run the TLS handshake and call `tls_started`.
    StartTls(String),
    /// Check these credentials against the node's users and call
    /// `auth_result` (the check is slow on purpose, so it runs elsewhere).
    Authenticate { user: String, password: String },
}

/// The answer to an `Authenticate` action (RFC 4954: 535 for bad
/// credentials, 454 for a temporary refusal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Refused,
    /// Too many failures for the user or the client's network (the node's
    /// login limiter, shared with the web login and ssh): seconds to wait.
    RateLimited(u64),
    /// The check could not be made.
    Unavailable,
}

/// Where an AUTH exchange waits for the client's next line.
#[derive(Debug)]
enum AuthStep {
    Plain,
    LoginUser,
    LoginPassword(String),
}

#[derive(Debug, Default)]
struct Data {
    buf: Vec<u8>,
    size: u64,
    too_big: bool,
    long_line: bool,
}

pub struct Session {
    limits: Limits,
    helo: Option<String>,
    from: Option<(String, bool)>,
    to: Vec<String>,
    errors: u32,
    data: Option<Data>,
    tls: bool,
    auth: Option<AuthStep>,
    user: Option<String>,
}

fn reply(code: u16, enhanced: &str, text: &str) -> String {
    format!("{code} {enhanced} {text}\r\n")
}

/// `local@domain` with both parts present; addresses without a domain
/// cannot be relayed.
fn routable(addr: &str) -> bool {
    addr.rsplit_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
}

impl Session {
    pub fn new(limits: Limits) -> Session {
        Session {
            limits,
            helo: None,
            from: None,
            to: Vec::new(),
            errors: 0,
            data: None,
            tls: false,
            auth: None,
            user: None,
        }
    }

    pub fn greeting(&self) -> String {
        format!("220 {} ESMTP alpharen\r\n", self.limits.hostname)
    }

    pub fn in_data(&self) -> bool {
        self.data.is_some()
    }

    fn reset(&mut self) {
        self.from = None;
        self.to.clear();
        self.data = None;
    }

    /// A refused command; too many of them end the session.
    fn error(&mut self, text: String) -> Action {
        self.errors += 1;
        if self.errors >= self.limits.max_errors {
            Action::Close(format!(
                "{}421 4.7.0 {} Error: too many errors\r\n",
                text, self.limits.hostname
            ))
        } else {
            Action::Reply(text)
        }
    }

    /// The user this session authenticated as, for the trace header.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// RFC 3207: after the handshake the client starts over with EHLO.
    pub fn tls_started(&mut self) {
        self.reset();
        self.helo = None;
        self.tls = true;
    }

    pub fn auth_result(&mut self, user: String, verdict: Verdict) -> Action {
        match verdict {
            Verdict::Accepted => {
                self.user = Some(user);
                Action::Reply(reply(235, "2.7.0", "Authentication successful"))
            }
            Verdict::Refused => {
                self.error(reply(535, "5.7.8", "Authentication credentials invalid"))
            }
            Verdict::RateLimited(secs) => self.error(reply(
                454,
                "4.7.0",
                &format!("Too many failed logins; try again in {secs} s"),
            )),
            Verdict::Unavailable => {
                self.error(reply(454, "4.7.0", "Temporary authentication failure"))
            }
        }
    }

    fn extensions(&self) -> &'static str {
        match (self.limits.submission, self.tls) {
            (true, false) => "250-STARTTLS\r\n",
            (true, true) if self.user.is_none() => "250-AUTH PLAIN LOGIN\r\n",
            _ => "",
        }
    }

    fn start_auth(&mut self, mechanism: u64, initial: &str) -> Action {
        if !self.limits.submission {
            return self.error(reply(502, "5.5.1", "Not offered on the loopback listener"));
        }
        if !self.tls {
            return self.error(reply(
                538,
                "5.7.11",
                "Encryption required: send STARTTLS first",
            ));
        }
        if self.helo.is_none() {
            return self.error(reply(503, "5.5.1", "Error: send HELO/EHLO first"));
        }
        if self.user.is_some() {
            return self.error(reply(503, "5.5.1", "Error: already authenticated"));
        }
        if self.from.is_some() {
            return self.error(reply(
                503,
                "5.5.1",
                "Error: AUTH not allowed in a mail transaction",
            ));
        }
        match mechanism {
            AUTH_PLAIN if initial.is_empty() => {
                self.auth = Some(AuthStep::Plain);
                Action::Reply("334 \r\n".into())
            }
            AUTH_PLAIN => self.auth_plain(initial),
            AUTH_LOGIN if initial.is_empty() => {
                self.auth = Some(AuthStep::LoginUser);
                Action::Reply("334 VXNlcm5hbWU6\r\n".into())
            }
            AUTH_LOGIN => self.auth_line(initial.as_bytes(), AuthStep::LoginUser),
            _ => self.error(reply(504, "5.5.4", "Unrecognized authentication type")),
        }
    }

    /// `authzid NUL authcid NUL password` (RFC 4616); the authzid must be
    /// empty or the same user.
    fn auth_plain(&mut self, encoded: &str) -> Action {
        let decoded = match B64.decode(encoded.trim()) {
            Ok(d) => d,
            Err(_) => return self.error(reply(501, "5.5.2", "Cannot decode the AUTH response")),
        };
        let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
        match parts.as_slice() {
            [authz, user, password] if authz.is_empty() || authz == user => {
                match (std::str::from_utf8(user), std::str::from_utf8(password)) {
                    (Ok(u), Ok(p)) => Action::Authenticate {
                        user: u.to_string(),
                        password: p.to_string(),
                    },
                    _ => self.error(reply(501, "5.5.2", "Credentials must be UTF-8")),
                }
            }
            _ => self.error(reply(501, "5.5.2", "Malformed AUTH PLAIN response")),
        }
    }

    /// A line answering a 334 challenge.
    fn auth_line(&mut self, line: &[u8], step: AuthStep) -> Action {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']).trim();
        if text == "*" {
            return self.error(reply(501, "5.0.0", "Authentication cancelled"));
        }
        let user = match step {
            AuthStep::Plain => return self.auth_plain(text),
            AuthStep::LoginUser => None,
            AuthStep::LoginPassword(user) => Some(user),
        };
        let Ok(Ok(value)) = B64.decode(text).map(String::from_utf8) else {
            return self.error(reply(501, "5.5.2", "Cannot decode the AUTH response"));
        };
        match user {
            None => {
                self.auth = Some(AuthStep::LoginPassword(value));
                Action::Reply("334 UGFzc3dvcmQ6\r\n".into())
            }
            Some(user) => Action::Authenticate {
                user,
                password: value,
            },
        }
    }

    /// One command line, with its line end. `too_long` says the line was
    /// cut at the line-length limit.
    pub fn command(&mut self, line: &[u8], too_long: bool) -> Action {
        if too_long {
            self.auth = None;
            return self.error(reply(500, "5.5.2", "Line too long"));
        }
        if let Some(step) = self.auth.take() {
            return self.auth_line(line, step);
        }
        let parsed = Request::parse(&mut line.iter());
        let req = match parsed {
            Ok(r) => r,
            Err(e) => return self.parse_error(e),
        };
        match req {
            Request::Ehlo { host } | Request::Lhlo { host } => {
                self.reset();
                self.helo = Some(host.to_string());
                let l = &self.limits;
                Action::Reply(format!(
                    "250-{}\r\n250-PIPELINING\r\n250-SIZE {}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
                     250-ENHANCEDSTATUSCODES\r\n{}250 HELP\r\n",
                    l.hostname,
                    l.max_message_size,
                    self.extensions()
                ))
            }
            Request::Helo { host } => {
                self.reset();
                self.helo = Some(host.to_string());
                Action::Reply(format!("250 {}\r\n", self.limits.hostname))
            }
            Request::Mail { from } => {
                if self.helo.is_none() {
                    return self.error(reply(503, "5.5.1", "Error: send HELO/EHLO first"));
                }
                if self.from.is_some() {
                    return self.error(reply(503, "5.5.1", "Error: nested MAIL command"));
                }
                if self.limits.submission && self.user.is_none() {
                    return self.error(reply(530, "5.7.0", "Authentication required"));
                }
                if from.flags & MAIL_BODY_BINARYMIME != 0 {
                    return self.error(reply(555, "5.5.4", "BODY=BINARYMIME is not supported"));
                }
                if from.size as u64 > self.limits.max_message_size {
                    return self.error(reply(
                        552,
                        "5.3.4",
                        "Message size exceeds fixed maximum message size",
                    ));
                }
                let addr = from.address.to_string();
                if !addr.is_empty() && !routable(&addr) {
                    return self.error(reply(553, "5.1.7", "Sender address needs a domain"));
                }
                let utf8 = from.flags & MAIL_SMTPUTF8 != 0;
                if !utf8 && !addr.is_ascii() {
                    return self.error(reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8"));
                }
                self.from = Some((addr, utf8));
                Action::Reply(reply(250, "2.1.0", "Ok"))
            }
            Request::Rcpt { to } => {
                let Some((_, utf8)) = &self.from else {
                    return self.error(reply(503, "5.5.1", "Error: need MAIL command"));
                };
                let addr = to.address.to_string();
                if !routable(&addr) {
                    return self.error(reply(501, "5.1.3", "Bad recipient address syntax"));
                }
                if !*utf8 && !addr.is_ascii() {
                    return self.error(reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8"));
                }
                if self.to.len() >= self.limits.max_recipients {
                    // 452 per RFC 5321 4.5.3.1.10: the client sends the rest later.
                    return Action::Reply(reply(452, "4.5.3", "Error: too many recipients"));
                }
                self.to.push(addr);
                Action::Reply(reply(250, "2.1.5", "Ok"))
            }
            Request::Data => {
                if self.from.is_none() {
                    return self.error(reply(503, "5.5.1", "Error: need MAIL command"));
                }
                if self.to.is_empty() {
                    return self.error(reply(554, "5.5.1", "Error: no valid recipients"));
                }
                self.data = Some(Data::default());
                Action::StartData("354 End data with <CR><LF>.<CR><LF>\r\n".into())
            }
            Request::Rset => {
                self.reset();
                Action::Reply(reply(250, "2.0.0", "Ok"))
            }
            Request::Noop { .. } => Action::Reply(reply(250, "2.0.0", "Ok")),
            Request::Quit => Action::Close(reply(221, "2.0.0", "Bye")),
            Request::Vrfy { .. } => Action::Reply(reply(
                252,
                "2.5.2",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => Action::Reply(
                "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP\r\n".into(),
            ),
            Request::StartTls if !self.limits.submission => {
                self.error(reply(502, "5.5.1", "Not offered on the loopback listener"))
            }
            Request::StartTls if self.tls => {
                self.error(reply(503, "5.5.1", "Error: TLS already active"))
            }
            Request::StartTls => Action::StartTls(reply(220, "2.0.0", "Ready to start TLS")),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.start_auth(mechanism, &initial_response),
            other => self.error(reply(
                502,
                "5.5.1",
                &format!("Error: command {} not implemented", other.name()),
            )),
        }
    }

    fn parse_error(&mut self, e: ParseError) -> Action {
        let text = match e {
            ParseError::UnknownCommand => reply(500, "5.5.2", "Error: command not recognized"),
            ParseError::InvalidSenderAddress => reply(501, "5.1.7", "Bad sender address syntax"),
            ParseError::InvalidRecipientAddress => {
                reply(501, "5.1.3", "Bad recipient address syntax")
            }
            ParseError::SyntaxError { syntax } => reply(501, "5.5.4", &format!("Syntax: {syntax}")),
            ParseError::InvalidParameter { param } => {
                reply(501, "5.5.4", &format!("Invalid parameter {param}"))
            }
            ParseError::UnsupportedParameter { param } => reply(
                555,
                "5.5.4",
                &format!("Unsupported parameter {}", param.escape_debug()),
            ),
            ParseError::ResponseTooLong => reply(500, "5.5.2", "Line too long"),
            ParseError::NeedsMoreData { .. } | ParseError::InvalidResponse { .. } => {
                reply(500, "5.5.2", "Error: bad syntax")
            }
        };
        self.error(text)
    }

    /// One line of message text with its line end (or cut at the limit).
    /// `None` means keep reading.
    pub fn data_line(&mut self, line: &[u8], too_long: bool) -> Option<Action> {
        let Some(data) = self.data.as_mut() else {
            return Some(Action::Reply(reply(503, "5.5.1", "Error: not in DATA")));
        };
        if !too_long && !line.ends_with(b"\r\n") {
            // A bare LF could end the message text for us but not for the
            // next hop (SMTP smuggling); refuse and close like Postfix.
            self.reset();
            return Some(Action::Close(reply(
                521,
                "5.5.2",
                "Error: bare <LF> received (RFC 5321 2.3.8); closing connection",
            )));
        }
        if line == b".\r\n" {
            let data = self.data.take().unwrap_or_default();
            let (from, _) = self.from.take().unwrap_or_default();
            let to = std::mem::take(&mut self.to);
            return Some(if data.too_big {
                Action::Reply(reply(552, "5.3.4", "Error: message too large"))
            } else if data.long_line {
                Action::Reply(reply(
                    550,
                    "5.6.0",
                    &format!(
                        "Error: message has a line longer than {} bytes",
                        self.limits.max_line_length
                    ),
                ))
            } else {
                Action::Accept(Transaction {
                    helo: self.helo.clone().unwrap_or_default(),
                    from,
                    to,
                    data: data.buf,
                })
            });
        }
        if too_long {
            data.long_line = true;
        }
        let text = line.strip_prefix(b".").unwrap_or(line);
        data.size += text.len() as u64;
        if data.size > self.limits.max_message_size {
            data.too_big = true;
            data.buf = Vec::new();
        }
        if !data.too_big && !data.long_line {
            data.buf.extend_from_slice(text);
        }
        None
    }
}

/// Feeds `data` to a session line by line (the first byte picks loopback
/// or submission and whether AUTH succeeds), acting out STARTTLS and AUTH
/// as the listener would, and checks every reply: a CRLF-terminated line
/// with a 3-digit code. Returns how many messages were accepted. For the
/// fuzz target (`appliance/mail/fuzz`) and the randomized unit test.
pub fn drive(data: &[u8]) -> usize {
    const MAX_LINE: usize = 256;
    let (mode, input) = data.split_first().map_or((0, data), |(m, r)| (*m, r));
    let mut s = Session::new(Limits {
        hostname: "fuzz".into(),
        max_message_size: 4096,
        max_recipients: 5,
        max_line_length: MAX_LINE,
        max_errors: 50,
        submission: mode & 1 == 1,
    });
    let mut accepted = 0;
    for chunk in input.split_inclusive(|&b| b == b'\n') {
        let too_long = chunk.len() > MAX_LINE;
        let line = &chunk[..chunk.len().min(MAX_LINE)];
        let mut action = if s.in_data() {
            match s.data_line(line, too_long) {
                None => continue,
                Some(a) => a,
            }
        } else {
            s.command(line, too_long)
        };
        loop {
            match action {
                Action::Authenticate { user, .. } => {
                    let verdict = if mode & 2 == 2 {
                        Verdict::Accepted
                    } else {
                        Verdict::Refused
                    };
                    action = s.auth_result(user, verdict)
                }
                Action::StartTls(t) => {
                    check_reply(&t);
                    s.tls_started();
                    break;
                }
                Action::Reply(t) | Action::StartData(t) => {
                    check_reply(&t);
                    break;
                }
                Action::Close(t) => {
                    check_reply(&t);
                    return accepted;
                }
                Action::Accept(tx) => {
                    assert!(!tx.to.is_empty(), "accepted without recipients");
                    assert!(tx.data.len() <= 4096, "accepted over the size limit");
                    accepted += 1;
                    break;
                }
            }
        }
    }
    accepted
}

fn check_reply(reply: &str) {
    assert!(reply.ends_with("\r\n"), "reply without CRLF: {reply:?}");
    for line in reply.split_terminator("\r\n") {
        let code = line.get(..3).unwrap_or("");
        assert!(
            code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()),
            "reply line without a code: {line:?}"
        );
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
