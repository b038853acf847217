//! The built-in services, in start order. Each runs as
//! `alpharen serve NAME`; a change to any section it reads reaches it as
//! SIGHUP. Services add themselves here when they land, with the system
//! user they run as and the capabilities they keep (docs/services.md says
//! why each needs what it has).

use alpharen_store::Section;

use crate::privsep::{Cap, User};

pub struct Builtin {
    pub name: &'static str,
    /// Every section its `serve` reads: a change to any of them reaches it
    /// as SIGHUP. Kept next to what the service reads (`grep` its crate for
    /// `current_config()`); a test below pins the shared ones.
    pub reads: &'static [Section],
    /// Runs as this user (when the supervisor is root), with `alpharen` as
    /// its only supplementary group.
    pub user: User,
    /// The only capabilities it keeps (permitted, effective, inheritable,
    /// ambient and bounding set alike).
    pub caps: &'static [Cap],
    /// Directories under the state directory that only it uses, with
    /// their mode: given to its user at every start.
    pub owns: &'static [(&'static str, u32)],
    /// Name prefixes of the secrets its view holds and it may keep
    /// (`services.view`, `services.keep_secret`).
    pub secrets: &'static [&'static str],
    /// Its tables in `<state>/<name>.db`, which older firmware kept in
    /// `alpharen.db` (moved by the supervisor at start).
    pub tables: &'static [&'static str],
    /// Name prefixes of the files it writes in the shared `log/`
    /// directory (given to its user at start: older firmware made them
    /// as root).
    pub logs: &'static [&'static str],
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
        user: User {
            name: "ar-net",
            id: 901,
        },
        caps: &[
            Cap::NetAdmin,
            Cap::NetRaw,
            Cap::NetBindService,
            Cap::SysTime,
        ],
        owns: &[],
        secrets: &[],
        tables: &[],
        logs: &[],
    },
    Builtin {
        name: "vpn",
        reads: &[Section::Vpn],
        user: User {
            name: "ar-vpn",
            id: 902,
        },
        caps: &[Cap::NetAdmin],
        owns: &[],
        secrets: &["vpn."],
        tables: &[],
        logs: &[],
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
        user: User {
            name: "ar-dpx",
            id: 903,
        },
        caps: &[Cap::NetBindService],
        owns: &[],
        secrets: &["dpx.tsig.", "dpx.client."],
        tables: &["dpx_records", "dpx_zone"],
        logs: &[],
    },
    // `/nic/update` and proxy routes from `[dpx]`, `vpn_only` routes from
    // `[vpn]`, the certificate's host name from `[node]`, the ACME
    // certificate from `[acme]`.
    Builtin {
        name: "web",
        reads: &[
            Section::Web,
            Section::Dpx,
            Section::Vpn,
            Section::Node,
            Section::Acme,
        ],
        user: User {
            name: "ar-web",
            id: alpharen_rpc::WEB_UID,
        },
        caps: &[Cap::NetBindService],
        owns: &[("tls", 0o2750)],
        secrets: &["dpx.dyndns.", "web.acme."],
        tables: &["web_sessions", "web_tokens"],
        logs: &[],
    },
    Builtin {
        name: "ssh",
        reads: &[Section::Ssh],
        user: User {
            name: "ar-ssh",
            id: 905,
        },
        caps: &[Cap::NetBindService],
        owns: &[("ssh", 0o700)],
        secrets: &[],
        tables: &[],
        logs: &[],
    },
    // The HELO name and the sender of notifications from `[node]`;
    // `[acme]`: STARTTLS may serve the ACME certificate.
    Builtin {
        name: "mail",
        reads: &[Section::Mail, Section::Node, Section::Acme],
        user: User {
            name: "ar-mail",
            id: 906,
        },
        caps: &[Cap::NetBindService],
        owns: &[("spool", 0o700)],
        secrets: &["mail."],
        tables: &[],
        logs: &[],
    },
    // [cluster]: in a cluster the controllers run on the member holding
    // their lease, with their state in JetStream (client password).
    Builtin {
        name: "pgha",
        reads: &[Section::Pgha, Section::Cluster, Section::Node],
        user: User {
            name: "ar-pgha",
            id: alpharen_rpc::PGHA_UID,
        },
        caps: &[],
        owns: &[("pgha", 0o700)],
        secrets: &["pgha.", "cluster.client_password"],
        tables: &["pgha_host_keys", "pgha_last_master"],
        logs: &["pgctrl_", "bkp_controller"],
    },
    Builtin {
        name: "integrator",
        // [cluster]: its KV moves to the cluster's bucket.
        reads: &[Section::Integrator, Section::Cluster],
        user: User {
            name: "ar-integrator",
            id: 908,
        },
        caps: &[],
        owns: &[("integrator", 0o700)],
        secrets: &["integrator.", "cluster.client_password"],
        tables: &[
            "integrator_versions",
            "integrator_active",
            "integrator_kv",
            "integrator_queue",
            "integrator_locks",
            "integrator_jobs",
        ],
        logs: &[],
    },
    // Last, so every other service's first lines are in the backlog it
    // forwards on start; the host name it sends from `[node]`; SNMP traps
    // for the node's events from `[snmp]` with the `snmp.community` secret;
    // binding the syslog receiver's port 514 needs CAP_NET_BIND_SERVICE.
    Builtin {
        name: "logfwd",
        reads: &[Section::Syslog, Section::Node, Section::Snmp],
        user: User {
            name: "ar-logfwd",
            id: 910,
        },
        caps: &[Cap::NetBindService],
        owns: &[],
        secrets: &["snmp."],
        tables: &[],
        logs: &[],
    },
    // nats-server as its child; certificates and JetStream under cluster/;
    // [integrator] port and tls: the load balancer its heartbeat offers.
    Builtin {
        name: "cluster",
        reads: &[
            Section::Cluster,
            Section::Node,
            Section::Web,
            Section::Integrator,
        ],
        user: User {
            name: "ar-cluster",
            id: 912,
        },
        caps: &[],
        owns: &[("cluster", 0o700)],
        secrets: &["cluster."],
        tables: &[],
        logs: &[],
    },
    // The reaction engine: its agent API (HTTPS with the node's
    // certificate from tls/), its runs and timers in reaction.db; mail
    // through the node's loopback SMTP listener from [mail.listen];
    // integrator services invoked through the control socket.
    Builtin {
        name: "reaction",
        reads: &[Section::Reaction, Section::Mail, Section::Node],
        user: User {
            name: "ar-reaction",
            id: 913,
        },
        caps: &[],
        owns: &[],
        secrets: &["reaction."],
        tables: &[],
        logs: &[],
    },
];

/// The built-ins not in `serving`, in start order.
pub fn waiting_for(serving: &crate::state::Serving) -> Vec<&'static str> {
    BUILTINS
        .iter()
        .map(|b| b.name)
        .filter(|n| !serving.contains_key(n))
        .collect()
}

pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// What became of a restarted built-in.
#[derive(Debug, PartialEq, Eq)]
pub enum Restart {
    Serving,
    /// It exited by itself first (how, e.g. "exited with status 1").
    Exited(String),
    /// A command stopped or replaced it first.
    Replaced,
    /// It did not say it serves in time.
    Silent,
}

/// Waits up to `within` for process group `pid` (every service leads its
/// own) to say `name` is serving; the word of an earlier process of that
/// name does not count. A process that exits first ends the wait at once.
pub async fn serves(
    mut serving: tokio::sync::watch::Receiver<crate::state::Serving>,
    name: &str,
    pid: u32,
    exited: tokio::sync::oneshot::Receiver<String>,
    within: std::time::Duration,
) -> Restart {
    let waited = async {
        tokio::select! {
            biased;
            said = serving.wait_for(|s| s.get(name) == Some(&i32::try_from(pid).ok())) => {
                if said.is_ok() { Restart::Serving } else { Restart::Silent }
            }
            how = exited => how.map_or(Restart::Replaced, Restart::Exited),
        }
    };
    tokio::time::timeout(within, waited)
        .await
        .unwrap_or(Restart::Silent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_restart_waits_for_the_new_process_to_serve() {
        use std::time::Duration;
        use tokio::sync::oneshot;
        let minute = Duration::from_secs(60);
        let (tx, _) = tokio::sync::watch::channel(crate::state::Serving::new());
        tx.send_modify(|s| {
            s.insert("dpx", Some(100));
        });
        // The old process's word is not the new one's.
        let (_alive, exited) = oneshot::channel();
        assert_eq!(
            serves(tx.subscribe(), "dpx", 200, exited, minute).await,
            Restart::Silent
        );
        let (alive, exited) = oneshot::channel::<String>();
        let waiting = tokio::spawn(serves(tx.subscribe(), "dpx", 200, exited, minute));
        tokio::time::sleep(Duration::from_secs(5)).await;
        tx.send_modify(|s| {
            s.insert("web", Some(200));
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished());
        tx.send_modify(|s| {
            s.insert("dpx", Some(200));
        });
        assert_eq!(waiting.await.ok(), Some(Restart::Serving));
        drop(alive);
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_process_that_exits_ends_the_wait_at_once() {
        use std::time::Duration;
        use tokio::sync::oneshot;
        let minute = Duration::from_secs(60);
        let (tx, _) = tokio::sync::watch::channel(crate::state::Serving::new());
        let started = tokio::time::Instant::now();
        let (exit, exited) = oneshot::channel();
        let waiting = tokio::spawn(serves(tx.subscribe(), "dpx", 200, exited, minute));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = exit.send("exited with status 1".to_string());
        assert_eq!(
            waiting.await.ok(),
            Some(Restart::Exited("exited with status 1".into()))
        );
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        // Stopped by a command: the sender goes without a word.
        let (exit, exited) = oneshot::channel::<String>();
        drop(exit);
        assert_eq!(
            serves(tx.subscribe(), "dpx", 200, exited, minute).await,
            Restart::Replaced
        );
    }

    #[test]
    fn the_node_waits_for_every_builtin_to_serve() {
        let mut serving = crate::state::Serving::new();
        assert_eq!(waiting_for(&serving).len(), BUILTINS.len());
        for b in BUILTINS.iter().filter(|b| b.name != "mail") {
            serving.insert(b.name, None);
        }
        assert_eq!(waiting_for(&serving), vec!["mail"]);
        serving.insert("mail", Some(1));
        assert!(waiting_for(&serving).is_empty());
    }

    fn reloaded(changed: &[Section]) -> Vec<&'static str> {
        BUILTINS
            .iter()
            .filter(|b| b.watches(changed))
            .map(|b| b.name)
            .collect()
    }

    #[test]
    fn a_node_change_reaches_every_reader_of_node() {
        assert_eq!(
            reloaded(&[Section::Node]),
            [
                "net", "dpx", "web", "mail", "pgha", "logfwd", "cluster", "reaction"
            ]
        );
    }

    #[test]
    fn shared_sections_reach_their_readers() {
        assert_eq!(reloaded(&[Section::Network]), ["net", "dpx"]);
        assert_eq!(reloaded(&[Section::Vpn]), ["vpn", "dpx", "web"]);
        assert_eq!(
            reloaded(&[Section::Integrator]),
            ["dpx", "integrator", "cluster"]
        );
        assert_eq!(reloaded(&[Section::Pgha]), ["pgha"]);
        assert_eq!(reloaded(&[Section::Web]), ["web", "cluster"]);
        assert_eq!(
            reloaded(&[Section::Cluster]),
            ["pgha", "integrator", "cluster"]
        );
    }

    #[test]
    fn each_service_has_its_own_user_in_the_reserved_range() {
        let mut ids: Vec<u32> = BUILTINS.iter().map(|b| b.user.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), BUILTINS.len());
        assert!(ids.iter().all(|id| (901..=949).contains(id)));
        for b in BUILTINS {
            assert_eq!(b.user.name, format!("ar-{}", b.name));
        }
    }

    /// The image names the users in its passwd and group; the ids there
    /// must be the ones the supervisor uses.
    #[test]
    fn the_image_passwd_and_group_name_every_service_user() {
        let overlay = concat!(env!("CARGO_MANIFEST_DIR"), "/../../overlays/etc/");
        let passwd = std::fs::read_to_string(format!("{overlay}passwd")).unwrap();
        let group = std::fs::read_to_string(format!("{overlay}group")).unwrap();
        for b in BUILTINS {
            let id = b.user.id;
            let user = format!("{}:x:{id}:{id}:", b.user.name);
            assert!(passwd.lines().any(|l| l.starts_with(&user)), "{user}");
            let own = format!("{}:x:{id}:", b.user.name);
            assert!(group.lines().any(|l| l.starts_with(&own)), "{own}");
        }
        let shared = format!("alpharen:x:{}:", crate::privsep::ALPHAREN_GID);
        assert!(group.lines().any(|l| l.starts_with(&shared)), "{shared}");
    }
}
