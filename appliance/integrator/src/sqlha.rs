//! Outgoing SQL connections that follow a pgha group's master
//! (`pgha_group = "main"`). The pgha service knows which member is master
//! and says so in `pgha.status`; the integrator asks it through the
//! control socket every `POLL` and points the connection's pool at the
//! master it names, dropping the old pool's connections when the master
//! changes. Which endpoint to use is decided by pure functions.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

/// How often pgha's status is read while a connection follows a group.
pub const POLL: Duration = Duration::from_secs(2);

/// A PostgreSQL server: host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Where a connection of a group points: a master, or why none.
pub type Target = Result<Endpoint, String>;

/// The master pgha reports for `group` in its `pgha.status` answer: the
/// server the controller holds for master when it answers as primary,
/// else the only server answering as primary; none during a failover or
/// with two primaries it has not settled.
pub fn master(status: &Value, group: &str) -> Target {
    let Some(g) = status["groups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["key"] == group))
    else {
        return Err(format!(
            "pgha does not run a group {group:?} (see ctl pgha status)"
        ));
    };
    let servers = g["servers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let primary = |s: &&Value| s["role"] == "primary";
    let held = g["master"]
        .as_u64()
        .and_then(|i| servers.get(usize::try_from(i).ok()?))
        .filter(primary);
    let chosen = held.or_else(|| {
        let mut ps = servers.iter().filter(primary);
        match (ps.next(), ps.next()) {
            (Some(p), None) => Some(p),
            _ => None,
        }
    });
    let Some(server) = chosen else {
        let situation = g["situation"].as_str().unwrap_or("unknown");
        return Err(format!(
            "pgha group {group:?} has no master now ({situation})"
        ));
    };
    let pg = server["pg"].as_str().unwrap_or_default();
    pg.rsplit_once(':')
        .and_then(|(h, p)| {
            Some(Endpoint {
                host: h.trim_start_matches('[').trim_end_matches(']').to_string(),
                port: p.parse().ok()?,
            })
        })
        .filter(|e| !e.host.is_empty())
        .ok_or_else(|| {
            format!("pgha group {group:?}: its master's address {pg:?} is not host:port")
        })
}

/// What to do with a connection pointing at `current` when pgha answered
/// `observed` (`Err` when pgha could not be asked): `None` keeps it as it
/// is. A failure to ask pgha keeps a known master (pgha restarting is no
/// reason to drop working connections) and only replaces an earlier
/// reason; a master gone or changed replaces it.
pub fn decide(current: &Target, observed: Result<Target, String>) -> Option<Target> {
    let next = match observed {
        Ok(t) => t,
        Err(_) if current.is_ok() => return None,
        Err(e) => Err(format!(
            "the master is not known: pgha's status could not be read ({e})"
        )),
    };
    (next != *current).then_some(next)
}

/// Follows the groups while any connection names one; the first lookup
/// happens at once, so a connection is usable as soon as pgha answers.
pub async fn follow_loop(app: Arc<crate::app::App>) {
    loop {
        let groups = app.sql.groups();
        if !groups.is_empty() {
            let status = alpharen_rpc::call(
                &alpharen_rpc::control_socket(&app.state_dir),
                "pgha.status",
                serde_json::json!({}),
                Duration::from_secs(5),
            )
            .await
            .map_err(|e| e.to_string());
            for group in groups {
                let observed = status
                    .as_ref()
                    .map(|s| master(s, &group))
                    .map_err(Clone::clone);
                app.sql.follow(&group, observed);
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn status(master: u64, roles: [&str; 2]) -> Value {
        json!({"groups": [{"key": "main", "master": master, "situation": "master lost",
            "servers": [{"pg": "10.0.0.1:5432", "role": roles[0]},
                        {"pg": "[fd00::2]:5433", "role": roles[1]}]}]})
    }

    fn ep(host: &str, port: u16) -> Target {
        Ok(Endpoint {
            host: host.into(),
            port,
        })
    }

    #[test]
    fn the_master_is_the_held_primary_else_the_only_primary() {
        assert_eq!(
            master(&status(0, ["primary", "standby"]), "main"),
            ep("10.0.0.1", 5432)
        );
        // After a promotion, before the controller moved its mark.
        assert_eq!(
            master(&status(0, ["down", "primary"]), "main"),
            ep("fd00::2", 5433)
        );
        // Two primaries: the one the controller keeps.
        assert_eq!(
            master(&status(1, ["primary", "primary"]), "main"),
            ep("fd00::2", 5433)
        );
        let none = master(&status(0, ["down", "standby"]), "main").unwrap_err();
        assert!(none.contains("no master now (master lost)"), "{none}");
        let unknown = master(&status(0, ["primary", "standby"]), "other").unwrap_err();
        assert!(
            unknown.contains("does not run a group \"other\""),
            "{unknown}"
        );
        let bad = json!({"groups": [{"key": "main", "master": 0, "servers": [{"pg": "x", "role": "primary"}]}]});
        assert!(master(&bad, "main").unwrap_err().contains("not host:port"));
    }

    #[test]
    fn a_failover_switches_and_an_unreadable_status_keeps_a_known_master() {
        let a = ep("10.0.0.1", 5432);
        let b = ep("10.0.0.2", 5432);
        assert_eq!(
            decide(&a, Ok(a.clone())),
            None,
            "same master: keep the pool"
        );
        assert_eq!(
            decide(&a, Ok(b.clone())),
            Some(b.clone()),
            "failover: switch"
        );
        let lost: Target = Err("pgha group \"main\" has no master now (master lost)".into());
        assert_eq!(
            decide(&a, Ok(lost.clone())),
            Some(lost.clone()),
            "no master: stop using the old one"
        );
        assert_eq!(
            decide(&lost, Ok(b.clone())),
            Some(b.clone()),
            "a new master: recover"
        );
        assert_eq!(
            decide(&b, Err("connection refused".into())),
            None,
            "pgha restarting: keep"
        );
        let unknown = decide(
            &Err("not asked yet".into()),
            Err("connection refused".into()),
        );
        assert!(
            unknown
                .unwrap()
                .unwrap_err()
                .contains("pgha's status could not be read (connection refused)")
        );
        let same: Target =
            Err("the master is not known: pgha's status could not be read (x)".into());
        assert_eq!(decide(&same, Err("x".into())), None);
    }
}
