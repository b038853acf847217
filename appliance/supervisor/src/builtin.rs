//! The built-in services, in start order. Each runs as
//! `alpharen serve NAME` and owns one config section; a change to that
//! section reaches it as SIGHUP. Services add themselves here when they land.

use alpharen_store::Section;

pub struct Builtin {
    pub name: &'static str,
    pub section: Section,
}

/// Start order is this order; stop order is its reverse.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "net",
        section: Section::Network,
    },
    Builtin {
        name: "vpn",
        section: Section::Vpn,
    },
    Builtin {
        name: "web",
        section: Section::Web,
    },
    Builtin {
        name: "ssh",
        section: Section::Ssh,
    },
    Builtin {
        name: "mail",
        section: Section::Mail,
    },
    Builtin {
        name: "pgha",
        section: Section::Pgha,
    },
    Builtin {
        name: "integrator",
        section: Section::Integrator,
    },
];

pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}
