//! The built-in services, in start order. Each runs as
//! `alpharen serve NAME`; a change to any section it reads reaches it as
//! SIGHUP. Services add themselves here when they land.

use alpharen_store::Section;

pub struct Builtin {
    pub name: &'static str,
    /// Every section its `serve` reads: a change to any of them reaches it
    /// as SIGHUP. Kept next to what the service reads (`grep` its crate for
    /// `current_config()`); a test below pins the shared ones.
    pub reads: &'static [Section],
}

impl Builtin {
    /// Whether a change to these sections concerns this service.
    pub fn watches(&self, changed: &[Section]) -> bool {
        changed.iter().any(|s| self.reads.contains(s))
    }
}

/// Start order is this order; stop order is its reverse.
pub const BUILTINS: &[Builtin] = &[
    // Hostname (DHCP option 12) and the interfaces.
    Builtin {
        name: "net",
        reads: &[Section::Network, Section::Node],
    },
    Builtin {
        name: "vpn",
        reads: &[Section::Vpn],
    },
    // The zone's node and arsrv names, the interfaces' addresses, the VPN
    // tunnel addresses and the integrator servers (`_arsrv._tcp`).
    Builtin {
        name: "dpx",
        reads: &[
            Section::Dpx,
            Section::Node,
            Section::Network,
            Section::Vpn,
            Section::Integrator,
        ],
    },
    // `/nic/update` and proxy routes from `[dpx]`, `vpn_only` routes from
    // `[vpn]`, the certificate's host name from `[node]`.
    Builtin {
        name: "web",
        reads: &[Section::Web, Section::Dpx, Section::Vpn, Section::Node],
    },
    Builtin {
        name: "ssh",
        reads: &[Section::Ssh],
    },
    // The HELO name and the sender of notifications from `[node]`.
    Builtin {
        name: "mail",
        reads: &[Section::Mail, Section::Node],
    },
    Builtin {
        name: "pgha",
        reads: &[Section::Pgha],
    },
    Builtin {
        name: "integrator",
        reads: &[Section::Integrator],
    },
];

pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reloaded(changed: &[Section]) -> Vec<&'static str> {
        BUILTINS
            .iter()
            .filter(|b| b.watches(changed))
            .map(|b| b.name)
            .collect()
    }

    #[test]
    fn a_node_change_reaches_every_reader_of_node() {
        assert_eq!(reloaded(&[Section::Node]), ["net", "dpx", "web", "mail"]);
    }

    #[test]
    fn shared_sections_reach_their_readers() {
        assert_eq!(reloaded(&[Section::Network]), ["net", "dpx"]);
        assert_eq!(reloaded(&[Section::Vpn]), ["vpn", "dpx", "web"]);
        assert_eq!(reloaded(&[Section::Integrator]), ["dpx", "integrator"]);
        assert_eq!(reloaded(&[Section::Pgha]), ["pgha"]);
    }
}
