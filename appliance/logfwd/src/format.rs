//! RFC 5424 messages from captured log lines, and their framing on the
//! wire: pure functions, so the exact bytes a collector sees are tested
//! here rather than found out from a collector.

use serde::Deserialize;

/// Largest UDP datagram we send. RFC 5426 asks every receiver to accept
/// 2048 octets; longer messages may be cut or dropped on the way, so we
/// cut them ourselves and mark where.
pub const UDP_MAX: usize = 2048;

const CUT_MARK: &str = " [truncated]";

/// One line of the supervisor's log stream (`logs.read`). The stream's
/// own notes ("N log lines skipped") carry no time, so every field has a
/// default rather than making the line unreadable.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogLine {
    #[serde(default)]
    pub service: String,
    /// Milliseconds since the Unix epoch; 0 when the stream left it out.
    #[serde(default)]
    pub at: i64,
    #[serde(default)]
    pub stream: String,
    #[serde(default)]
    pub text: String,
}

/// Syslog severities (RFC 5424 section 6.2.1) we derive from a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error = 3,
    Warning = 4,
    Info = 6,
    Debug = 7,
}

/// The level `tracing` printed at the start of a line (` INFO`, `ERROR`,
/// ...), else info: supervisor events and other programs' output carry
/// none.
pub fn severity(text: &str) -> Severity {
    match text.split_whitespace().next() {
        Some("ERROR") => Severity::Error,
        Some("WARN") => Severity::Warning,
        Some("DEBUG") | Some("TRACE") => Severity::Debug,
        _ => Severity::Info,
    }
}

/// RFC 3339 time in UTC with milliseconds, as RFC 5424 allows; the
/// NILVALUE when the time is unknown.
pub fn timestamp(at_ms: i64) -> String {
    if at_ms <= 0 {
        return "-".into();
    }
    match chrono::DateTime::from_timestamp_millis(at_ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => "-".into(),
    }
}

/// A header field: printable US-ASCII without spaces, at most `max`
/// characters, the NILVALUE when nothing is left (RFC 5424 section 6).
fn header_field(value: &str, max: usize) -> String {
    let clean: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if clean.is_empty() { "-".into() } else { clean }
}

/// One RFC 5424 message without framing:
/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`, with the
/// service as APP-NAME and the captured stream (`out`, `err`, `event`) as
/// MSGID.
pub fn message(facility: u8, hostname: &str, line: &LogLine) -> String {
    let pri = u16::from(facility) * 8 + severity(&line.text) as u16;
    let app = if line.service.is_empty() {
        "alpharen"
    } else {
        &line.service
    };
    format!(
        "<{pri}>1 {} {} {} - {} - {}",
        timestamp(line.at),
        header_field(hostname, 255),
        header_field(app, 48),
        header_field(&line.stream, 32),
        line.text.trim_start(),
    )
}

/// The message cut to at most `max` bytes at a character boundary, ending
/// in a mark that says so.
pub fn truncate(message: &str, max: usize) -> String {
    if message.len() <= max {
        return message.to_string();
    }
    let mut cut = max.saturating_sub(CUT_MARK.len());
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{CUT_MARK}", &message[..cut])
}

/// RFC 6587 octet counting (also RFC 5425 over TLS): `LEN SP MSG`.
pub fn octet_frame(message: &str) -> Vec<u8> {
    let mut out = format!("{} ", message.len()).into_bytes();
    out.extend_from_slice(message.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(service: &str, stream: &str, text: &str) -> LogLine {
        LogLine {
            service: service.into(),
            at: 1_796_216_660_123,
            stream: stream.into(),
            text: text.into(),
        }
    }

    #[test]
    fn tracing_levels_become_severities() {
        assert_eq!(severity(" INFO alpharen_mail: queued"), Severity::Info);
        assert_eq!(severity(" WARN x: y"), Severity::Warning);
        assert_eq!(severity("ERROR x: y"), Severity::Error);
        assert_eq!(severity("DEBUG x"), Severity::Debug);
        assert_eq!(severity("mail started (pid 4)"), Severity::Info);
        assert_eq!(severity(""), Severity::Info);
    }

    #[test]
    fn a_line_becomes_an_rfc5424_message() {
        let m = message(
            16,
            "node1",
            &line("mail", "err", " WARN alpharen_mail: slow"),
        );
        assert_eq!(
            m,
            "<132>1 2026-12-02T13:04:20.123Z node1 mail - err - WARN alpharen_mail: slow"
        );
        let m = message(1, "", &line("supervisor", "event", "dpx started (pid 7)"));
        assert_eq!(
            m,
            "<14>1 2026-12-02T13:04:20.123Z - supervisor - event - dpx started (pid 7)"
        );
    }

    #[test]
    fn header_fields_hold_only_printable_ascii_and_unknown_time_is_nil() {
        let mut l = line("my svc é", "", "x");
        l.at = 0;
        assert_eq!(message(16, "a b", &l), "<134>1 - ab mysvc - - - x");
        assert_eq!(header_field(&"a".repeat(60), 48).len(), 48);
    }

    #[test]
    fn octet_counting_counts_bytes_not_characters() {
        assert_eq!(octet_frame("é"), b"2 \xc3\xa9".to_vec());
        assert_eq!(
            octet_frame("<14>1 - - - - - hi"),
            b"18 <14>1 - - - - - hi".to_vec()
        );
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary_and_marked() {
        assert_eq!(truncate("short", 10), "short");
        let long = "é".repeat(2000);
        let cut = truncate(&long, UDP_MAX);
        assert!(
            cut.len() <= UDP_MAX && cut.ends_with(CUT_MARK),
            "{}",
            cut.len()
        );
        assert!(cut.len() > UDP_MAX - CUT_MARK.len() - 2);
    }
}
