//! SNMP traps (v2c, or v3 through `usm`) for the node's own events: the supervisor's event lines
//! in the log stream (a service stopped, started, failed for good; a boot
//! slot failed; a configuration change reverted; a service's alert, such
//! as web's failed ACME order) become traps to every
//! `[[snmp.trap_targets]]` manager, with the `snmp.community` secret or
//! the manager's v3 user.
//! The trap and object identifiers are in `docs/ALPHAREN-MIB.txt`.

use std::collections::HashMap;
use std::time::Instant;

use alpharen_store::config::{
    AuthProtocol, Snmp, SnmpVersion, TrapTarget, v3_auth_secret, v3_priv_secret,
};
use serde::Serialize;

use crate::ber::{self, Value};
use crate::format::LogLine;
use crate::usm;

/// `alpharen` in ALPHAREN-MIB: under 32473, the enterprise number RFC 5612
/// sets aside for documentation, until the project registers its own.
const BASE: [u32; 8] = [1, 3, 6, 1, 4, 1, 32473, 1];

/// One of the node's events that a manager hears about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The service's process ended (`detail`: how).
    ServiceDown {
        service: String,
        detail: String,
    },
    ServiceUp {
        service: String,
    },
    /// The service crashed too often and is no longer restarted.
    ServiceFailed {
        service: String,
        detail: String,
    },
    SlotFailed {
        detail: String,
    },
    ConfigReverted {
        detail: String,
    },
    /// A service's own alert (`services.alert`), e.g. web's failed ACME order.
    ServiceAlert {
        service: String,
        detail: String,
    },
    /// A line received from another host matched `[[syslog.receiver.rules]]`.
    SyslogMatch(SyslogMatch),
}

/// What `arSyslogMatch` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogMatch {
    pub rule: String,
    pub host: String,
    pub severity: &'static str,
    pub program: String,
    pub text: String,
}

/// Longest message text in a trap: a trap is one UDP datagram, and an
/// NMS shows a line, not a page.
const MAX_TRAP_TEXT: usize = 1000;

fn clip(s: &str) -> &str {
    let mut end = s.len().min(MAX_TRAP_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Event {
    /// `alpharenTraps.N` (BASE.0.N).
    fn number(&self) -> u32 {
        match self {
            Event::ServiceDown { .. } => 1,
            Event::ServiceUp { .. } => 2,
            Event::ServiceFailed { .. } => 3,
            Event::SlotFailed { .. } => 4,
            Event::ConfigReverted { .. } => 5,
            Event::ServiceAlert { .. } => 6,
            Event::SyslogMatch(_) => 7,
        }
    }

    fn service(&self) -> &str {
        match self {
            Event::ServiceDown { service, .. }
            | Event::ServiceUp { service }
            | Event::ServiceFailed { service, .. }
            | Event::ServiceAlert { service, .. } => service,
            Event::SlotFailed { .. } | Event::ConfigReverted { .. } | Event::SyslogMatch(_) => "",
        }
    }
}

fn is_service_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The event a log line reports, if any: only the supervisor's own event
/// lines count (a service cannot fake one by printing the same text).
pub fn classify(line: &LogLine) -> Option<Event> {
    if line.service != "supervisor" || line.stream != "event" {
        return None;
    }
    let text = line.text.as_str();
    if let Some(rest) = text.strip_prefix("notification: ") {
        if let Some(d) = rest.strip_prefix("boot slot failed: ") {
            return Some(Event::SlotFailed { detail: d.into() });
        }
        if let Some(d) = rest.strip_prefix("configuration reverted: ") {
            return Some(Event::ConfigReverted { detail: d.into() });
        }
        if let Some((name, d)) = rest
            .strip_prefix("alert from ")
            .and_then(|r| r.split_once(": "))
        {
            return is_service_name(name).then(|| Event::ServiceAlert {
                service: name.into(),
                detail: d.into(),
            });
        }
        let (name, detail) = rest.strip_prefix("service ")?.split_once(" failed: ")?;
        return is_service_name(name).then(|| Event::ServiceFailed {
            service: name.into(),
            detail: detail.into(),
        });
    }
    let (name, rest) = text.split_once(' ')?;
    if !is_service_name(name) {
        return None;
    }
    if rest.starts_with("started (pid ") {
        return Some(Event::ServiceUp {
            service: name.into(),
        });
    }
    let down = rest.starts_with("exited with status ")
        || rest.starts_with("killed by signal ")
        || rest.starts_with("could not be started")
        || rest == "exited";
    down.then(|| Event::ServiceDown {
        service: name.into(),
        detail: rest.into(),
    })
}

fn oid(tail: &[u32]) -> Vec<u32> {
    BASE.iter().chain(tail).copied().collect()
}

/// The trap PDU for `ev` from the node `hostname`.
pub fn pdu(ev: &Event, hostname: &str, id: i32, uptime: u32) -> Vec<u8> {
    ber::trap_pdu(id, uptime, &oid(&[0, ev.number()]), &binds(ev, hostname))
}

/// The variable bindings after `sysUpTime.0` and `snmpTrapOID.0`.
fn binds(ev: &Event, hostname: &str) -> Vec<(Vec<u32>, Value)> {
    let node = (oid(&[1, 1]), Value::Text(hostname.into()));
    let detail = match ev {
        Event::SyslogMatch(m) => {
            return vec![
                node,
                (oid(&[1, 8]), Value::Text(m.rule.clone())),
                (oid(&[1, 4]), Value::Text(m.host.clone())),
                (oid(&[1, 5]), Value::Text(m.severity.into())),
                (oid(&[1, 6]), Value::Text(m.program.clone())),
                (oid(&[1, 7]), Value::Text(clip(&m.text).into())),
            ];
        }
        Event::ServiceUp { .. } => "started",
        Event::ServiceDown { detail, .. }
        | Event::ServiceFailed { detail, .. }
        | Event::SlotFailed { detail }
        | Event::ConfigReverted { detail }
        | Event::ServiceAlert { detail, .. } => detail,
    };
    vec![
        node,
        (oid(&[1, 2]), Value::Text(ev.service().into())),
        (oid(&[1, 3]), Value::Text(detail.into())),
    ]
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub sent: u64,
    pub failed: u64,
    pub last_error: Option<String>,
}

/// How one manager's traps are sent.
enum Security {
    V2c,
    V3(Box<usm::User>),
    /// v3 without usable passphrases: nothing is sent to it.
    Missing,
}

/// A v3 user's passphrases from the secret store.
pub struct V3Secrets {
    pub auth: Option<String>,
    pub privacy: Option<String>,
}

/// RFC 3414 section 11.2 asks for at least 8 characters (net-snmp refuses
/// shorter ones).
const MIN_PASSPHRASE: usize = 8;

/// The managers and their credentials, as of the last start or SIGHUP.
pub struct Traps {
    targets: Vec<(TrapTarget, Security)>,
    community: Option<String>,
    hostname: String,
    engine_id: Vec<u8>,
    /// snmpEngineBoots: one more at every start of the service (kept in
    /// logfwd.db), so managers never see the engine's clock go back.
    boots: u32,
    started: Instant,
    next_id: i32,
    /// The AES salt: a fresh value for every v3 message of this boot.
    salt: u64,
    /// One socket per address family (IPv4 first), bound at the first
    /// trap: a trap per matched line must not cost a bind and a close.
    sockets: [Option<tokio::net::UdpSocket>; 2],
    pub stats: Stats,
}

impl Traps {
    pub fn new(boots: u32) -> Traps {
        Traps {
            targets: Vec::new(),
            community: None,
            hostname: String::new(),
            engine_id: Vec::new(),
            boots,
            started: Instant::now(),
            next_id: 1,
            salt: 0,
            sockets: [None, None],
            stats: Stats::default(),
        }
    }

    pub fn configure(
        &mut self,
        snmp: &Snmp,
        community: Option<String>,
        v3: &HashMap<String, V3Secrets>,
        hostname: &str,
    ) {
        let v2c = snmp
            .trap_targets
            .iter()
            .any(|t| t.version == SnmpVersion::V2c);
        if v2c && community.is_none() {
            tracing::warn!(
                "[snmp] trap_targets has v2c managers but the secret snmp.community is not set: they get no traps"
            );
        }
        self.engine_id = snmp.engine_id_bytes(hostname);
        self.targets = snmp
            .trap_targets
            .iter()
            .map(|t| {
                let security = match (t.version, t.user.as_deref()) {
                    (SnmpVersion::V3, Some(user)) => {
                        self.user(user, t.auth.unwrap_or_default(), v3.get(user))
                    }
                    (SnmpVersion::V3, None) => Security::Missing,
                    (SnmpVersion::V2c, _) => Security::V2c,
                };
                (t.clone(), security)
            })
            .collect();
        self.community = community;
        self.hostname = hostname.to_string();
    }

    fn user(&self, name: &str, auth: AuthProtocol, secrets: Option<&V3Secrets>) -> Security {
        let pass = |p: Option<&String>| p.filter(|p| p.chars().count() >= MIN_PASSPHRASE).cloned();
        match secrets.map(|s| (pass(s.auth.as_ref()), pass(s.privacy.as_ref()))) {
            Some((Some(a), Some(p))) => Security::V3(Box::new(usm::User::new(
                name,
                auth,
                &a,
                &p,
                &self.engine_id,
            ))),
            _ => {
                tracing::warn!(
                    user = name,
                    "SNMPv3 user without both passphrases of at least {MIN_PASSPHRASE} characters (secrets {} and {}): its managers get no traps",
                    v3_auth_secret(name),
                    v3_priv_secret(name)
                );
                Security::Missing
            }
        }
    }

    pub fn targets(&self) -> Vec<String> {
        self.targets
            .iter()
            .map(|(t, _)| format!("{}:{}", t.host, t.port_or_default()))
            .collect()
    }

    /// The engine ID in hex, as a manager's `createUser -e` wants it.
    pub fn engine_id(&self) -> String {
        self.engine_id.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Sends `ev` to every manager (one UDP datagram each; SNMP traps are
    /// not acknowledged); how many went out.
    pub async fn send(&mut self, ev: &Event) -> u64 {
        let mut sent = 0;
        let uptime = (self.started.elapsed().as_millis() / 10).min(u128::from(u32::MAX)) as u32;
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        let pdu = pdu(ev, &self.hostname, id, uptime);
        let engine = usm::Engine {
            id: &self.engine_id,
            boots: self.boots,
            time: self.started.elapsed().as_secs().min(i32::MAX as u64) as u32,
        };
        for (t, security) in &self.targets {
            let msg = match (security, &self.community) {
                (Security::V2c, Some(c)) => ber::v2c_message(c, &pdu),
                (Security::V3(user), _) => {
                    self.salt = self.salt.wrapping_add(1);
                    usm::v3_message(user, &engine, id, self.salt, &pdu)
                }
                (Security::V2c, None) | (Security::Missing, _) => continue,
            };
            match send_to(&mut self.sockets, t, &msg).await {
                Ok(()) => {
                    self.stats.sent += 1;
                    sent += 1;
                }
                Err(e) => {
                    let e = format!("{}:{}: {e}", t.host, t.port_or_default());
                    tracing::warn!(error = %e, "SNMP trap not sent");
                    self.stats.failed += 1;
                    self.stats.last_error = Some(e);
                }
            }
        }
        sent
    }
}

async fn send_to(
    sockets: &mut [Option<tokio::net::UdpSocket>; 2],
    t: &TrapTarget,
    msg: &[u8],
) -> std::io::Result<()> {
    let addr = tokio::net::lookup_host((t.host.as_str(), t.port_or_default()))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("the name has no address"))?;
    let (slot, local): (usize, std::net::SocketAddr) = if addr.is_ipv4() {
        (0, ([0, 0, 0, 0], 0).into())
    } else {
        (1, (std::net::Ipv6Addr::UNSPECIFIED, 0).into())
    };
    let sock = match &mut sockets[slot] {
        Some(s) => s,
        empty => empty.insert(tokio::net::UdpSocket::bind(local).await?),
    };
    sock.send_to(msg, addr).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(text: &str) -> Option<Event> {
        classify(&LogLine {
            service: "supervisor".into(),
            at: 1,
            stream: "event".into(),
            text: text.into(),
        })
    }

    #[test]
    fn the_supervisors_event_lines_are_classified() {
        // The exact texts of supervisor/src/service.rs, state.rs,
        // supervise.rs and confirm.rs.
        assert_eq!(
            event("mail started (pid 4242)"),
            Some(Event::ServiceUp {
                service: "mail".into()
            })
        );
        assert_eq!(
            event("mail killed by signal SIGKILL"),
            Some(Event::ServiceDown {
                service: "mail".into(),
                detail: "killed by signal SIGKILL".into()
            })
        );
        assert_eq!(
            event("dpx exited with status 1"),
            Some(Event::ServiceDown {
                service: "dpx".into(),
                detail: "exited with status 1".into()
            })
        );
        assert_eq!(
            event(
                "notification: service dpx failed: dpx is in a crash loop (dpx exited with status 1)"
            ),
            Some(Event::ServiceFailed {
                service: "dpx".into(),
                detail: "dpx is in a crash loop (dpx exited with status 1)".into()
            })
        );
        assert_eq!(
            event(
                "notification: boot slot failed: slot b failed all its boot tries and was skipped"
            ),
            Some(Event::SlotFailed {
                detail: "slot b failed all its boot tries and was skipped".into()
            })
        );
        assert!(matches!(
            event("notification: configuration reverted: revision 7 was not confirmed"),
            Some(Event::ConfigReverted { .. })
        ));
        assert_eq!(
            event("notification: alert from web: ACME certificate order for a.example failed: x"),
            Some(Event::ServiceAlert {
                service: "web".into(),
                detail: "ACME certificate order for a.example failed: x".into()
            })
        );
        for other in [
            "stopping services",
            "boot of slot a marked good",
            "ready: every service is serving",
            "notification: something else: x",
            "Mail started (pid 1)",
        ] {
            assert_eq!(event(other), None, "{other}");
        }
        // The same text from a service's own output is not an event.
        let forged = LogLine {
            service: "integrator".into(),
            at: 1,
            stream: "stderr".into(),
            text: "mail killed by signal SIGKILL".into(),
        };
        assert_eq!(classify(&forged), None);
    }

    #[test]
    fn a_trap_carries_the_node_service_and_detail() {
        let ev = Event::ServiceDown {
            service: "mail".into(),
            detail: "killed by signal SIGKILL".into(),
        };
        let m = ber::v2c_message("c0mm", &pdu(&ev, "node1", 7, 5));
        let find = |needle: &[u8]| m.windows(needle.len()).any(|w| w == needle);
        // snmpTrapOID.0 = alpharenTraps.1 (serviceDown)
        assert!(find(&[
            0x06, 0x0b, 0x2b, 6, 1, 4, 1, 0x81, 0xfd, 0x59, 1, 0, 1
        ]));
        assert!(find(b"\x04\x05node1"));
        assert!(find(b"\x04\x04mail"));
        assert!(find(b"\x04\x18killed by signal SIGKILL"));
        assert!(find(b"\x04\x04c0mm"));
    }

    #[test]
    fn a_syslog_trap_carries_rule_host_severity_program_and_clipped_text() {
        let ev = Event::SyslogMatch(SyslogMatch {
            rule: "disk".into(),
            host: "web1".into(),
            severity: "err",
            program: "kernel".into(),
            text: format!("{}é", "x".repeat(MAX_TRAP_TEXT - 1)),
        });
        let m = pdu(&ev, "node1", 1, 1);
        let find = |needle: &[u8]| m.windows(needle.len()).any(|w| w == needle);
        // snmpTrapOID.0 = alpharenTraps.7 (syslogMatch)
        assert!(find(&[
            0x06, 0x0b, 0x2b, 6, 1, 4, 1, 0x81, 0xfd, 0x59, 1, 0, 7
        ]));
        for (arc, text) in [
            (8u8, &b"disk"[..]),
            (4, b"web1"),
            (5, b"err"),
            (6, b"kernel"),
        ] {
            let mut want = vec![
                0x2b,
                6,
                1,
                4,
                1,
                0x81,
                0xfd,
                0x59,
                1,
                1,
                arc,
                0x04,
                text.len() as u8,
            ];
            want.extend_from_slice(text);
            assert!(find(&want), "object {arc}");
        }
        // The 2-byte 'é' would pass the limit: it is left out whole.
        let mut want = vec![1, 1, 7, 0x04, 0x82, 0x03, 0xe7];
        want.extend(std::iter::repeat_n(b'x', MAX_TRAP_TEXT - 1));
        assert!(find(&want));
    }
}
