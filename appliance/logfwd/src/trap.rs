//! SNMPv2c traps for the node's own events: the supervisor's event lines
//! in the log stream (a service stopped, started, failed for good; a boot
//! slot failed; a configuration change reverted; a service's alert, such
//! as web's failed ACME order) become traps to every
//! `[[snmp.trap_targets]]` manager, with the `snmp.community` secret.
//! The trap and object identifiers are in `docs/ALPHAREN-MIB.txt`.

use std::time::Instant;

use alpharen_store::config::{Snmp, TrapTarget};
use serde::Serialize;

use crate::ber::{self, Value};
use crate::format::LogLine;

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
        }
    }

    fn service(&self) -> &str {
        match self {
            Event::ServiceDown { service, .. }
            | Event::ServiceUp { service }
            | Event::ServiceFailed { service, .. }
            | Event::ServiceAlert { service, .. } => service,
            Event::SlotFailed { .. } | Event::ConfigReverted { .. } => "",
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

/// The trap message for `ev` from the node `hostname`.
pub fn message(ev: &Event, hostname: &str, community: &str, id: i32, uptime: u32) -> Vec<u8> {
    let detail = match ev {
        Event::ServiceUp { .. } => "started",
        Event::ServiceDown { detail, .. }
        | Event::ServiceFailed { detail, .. }
        | Event::SlotFailed { detail }
        | Event::ConfigReverted { detail }
        | Event::ServiceAlert { detail, .. } => detail,
    };
    let binds = [
        (oid(&[1, 1]), Value::Text(hostname.into())),
        (oid(&[1, 2]), Value::Text(ev.service().into())),
        (oid(&[1, 3]), Value::Text(detail.into())),
    ];
    ber::v2c_trap(community, id, uptime, &oid(&[0, ev.number()]), &binds)
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub sent: u64,
    pub failed: u64,
    pub last_error: Option<String>,
}

/// The managers and the community, as of the last start or SIGHUP.
pub struct Traps {
    targets: Vec<TrapTarget>,
    community: Option<String>,
    hostname: String,
    started: Instant,
    next_id: i32,
    pub stats: Stats,
}

impl Traps {
    pub fn new() -> Traps {
        Traps {
            targets: Vec::new(),
            community: None,
            hostname: String::new(),
            started: Instant::now(),
            next_id: 1,
            stats: Stats::default(),
        }
    }

    pub fn configure(&mut self, snmp: &Snmp, community: Option<String>, hostname: &str) {
        if !snmp.trap_targets.is_empty() && community.is_none() {
            tracing::warn!(
                "[snmp] trap_targets is set but the secret snmp.community is not: no traps are sent"
            );
        }
        self.targets = snmp.trap_targets.clone();
        self.community = community;
        self.hostname = hostname.to_string();
    }

    pub fn targets(&self) -> Vec<String> {
        self.targets
            .iter()
            .map(|t| format!("{}:{}", t.host, t.port_or_default()))
            .collect()
    }

    /// Sends `ev` to every manager (one UDP datagram each; SNMP traps are
    /// not acknowledged).
    pub async fn send(&mut self, ev: &Event) {
        let Some(community) = self.community.clone() else {
            return;
        };
        let uptime = (self.started.elapsed().as_millis() / 10).min(u128::from(u32::MAX)) as u32;
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        let msg = message(ev, &self.hostname, &community, id, uptime);
        for t in self.targets.clone() {
            match send_to(&t, &msg).await {
                Ok(()) => self.stats.sent += 1,
                Err(e) => {
                    let e = format!("{}:{}: {e}", t.host, t.port_or_default());
                    tracing::warn!(error = %e, "SNMP trap not sent");
                    self.stats.failed += 1;
                    self.stats.last_error = Some(e);
                }
            }
        }
    }
}

async fn send_to(t: &TrapTarget, msg: &[u8]) -> std::io::Result<()> {
    let addr = tokio::net::lookup_host((t.host.as_str(), t.port_or_default()))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("the name has no address"))?;
    let local: std::net::SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = tokio::net::UdpSocket::bind(local).await?;
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
        let m = message(&ev, "node1", "c0mm", 7, 5);
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
}
