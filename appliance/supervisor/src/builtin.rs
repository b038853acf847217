//! The built-in services, in start order. Each runs as
//! `alpharen serve NAME` and owns one config section; a change to that
//! section (or to one it also reads) reaches it as SIGHUP. Services add
//! themselves here when they land.

use alpharen_store::Section;

pub struct Builtin {
    pub name: &'static str,
    pub section: Section,
    /// Other sections it reads (web serves `/nic/update` and the proxy
    /// routes from `[dpx]`, `vpn_only` routes from `[vpn]`).
    pub also: &'static [Section],
}

impl Builtin {
    /// Whether a change to these sections concerns this service.
    pub fn watches(&self, changed: &[Section]) -> bool {
        changed
            .iter()
            .any(|s| *s == self.section || self.also.contains(s))
    }
}

/// Start order is this order; stop order is its reverse.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "net",
        section: Section::Network,
        also: &[],
    },
    Builtin {
        name: "vpn",
        section: Section::Vpn,
        also: &[],
    },
    Builtin {
        name: "dpx",
        section: Section::Dpx,
        also: &[],
    },
    Builtin {
        name: "web",
        section: Section::Web,
        also: &[Section::Dpx, Section::Vpn],
    },
    Builtin {
        name: "ssh",
        section: Section::Ssh,
        also: &[],
    },
    Builtin {
        name: "mail",
        section: Section::Mail,
        also: &[],
    },
    Builtin {
        name: "pgha",
        section: Section::Pgha,
        also: &[],
    },
    Builtin {
        name: "integrator",
        section: Section::Integrator,
        also: &[],
    },
];

pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}
