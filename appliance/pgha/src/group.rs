//! One group's loop: poll both servers (SQL and SSH) and the referee, feed
//! the state machine, carry out its actions, publish the status. Each
//! group runs on its own task, so a slow or broken group never holds up
//! another.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alpharen_store::config::PgGroupResolved;
use serde::Serialize;
use tokio::time::Instant;

use crate::act::{self, ActError, Server};
use crate::clock;
use crate::decide::{Action, Machine, Observation, Role, Situation, Ssh};
use crate::journal::Journal;
use crate::observe::{self, PollError, Polled};
use crate::pins::Pins;
use crate::referee;
use crate::remote::{Remote, RemoteError};
use crate::singleton::{Fence, PG};

/// Limit of one SSH login during a poll.
const PROBE_LIMIT: Duration = Duration::from_secs(5);
/// SSH logins cost a key exchange on both ends: at most one per server in
/// this time, however short the poll interval.
const SSH_EVERY: Duration = Duration::from_secs(5);
/// The referee may itself wait on an unreachable master (its own connect
/// timeout), so it gets longer than a SQL poll.
const REFEREE_LIMIT: Duration = Duration::from_secs(4);

#[derive(Debug, Clone, Serialize, Default)]
pub struct GroupStatus {
    pub key: String,
    /// Index of the server the controller holds for master.
    pub master: usize,
    pub situation: String,
    /// A timer running: what happens when it ends and in how many seconds.
    pub pending: Option<Pending>,
    pub referee: String,
    pub servers: Vec<ServerStatus>,
    pub last_action: Option<LastAction>,
    /// The last promotion, kept when later actions (the old master's
    /// rebuild) replace `last_action`.
    pub last_failover: Option<LastAction>,
    pub log: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub what: &'static str,
    pub in_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ServerStatus {
    pub pg: String,
    pub ssh: String,
    pub role: String,
    pub ssh_state: String,
    pub error: Option<String>,
    pub polled: Option<Polled>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LastAction {
    pub at: String,
    pub action: String,
    pub reason: String,
    pub result: String,
}

/// What a group's task needs besides its config.
#[derive(Clone)]
pub struct Env {
    pub grace: Duration,
    pub poll: Duration,
    pub remote: Arc<Remote>,
    pub pins: Pins,
    pub state_dir: std::path::PathBuf,
    /// In a cluster: where the group's state goes for the next holder.
    pub fence: Option<Fence>,
}

/// What a successor resumes a group from, kept in the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct GroupState {
    pub master: usize,
    pub last_failover: Option<LastAction>,
    pub last_action: Option<LastAction>,
}

/// The group's key in the cluster's state.
pub fn state_key(group: &str) -> String {
    format!("group.{group}")
}

pub async fn run(group: PgGroupResolved, env: Env, status: Arc<Mutex<GroupStatus>>) {
    let servers = group.servers.clone().map(Server::new);
    let key = group.key.clone();
    let journal = Journal::group(&env.state_dir, &key);
    // A member taking over resumes from what the last holder stored.
    let mut saved = match &env.fence {
        Some(f) => f.get::<GroupState>(PG, &state_key(&key)).await,
        None => None,
    };
    let last_master = saved
        .as_ref()
        .map_or_else(|| env.pins.last_master(&key), |s| s.master);
    if let Some(s) = &saved
        && let Ok(mut st) = status.lock()
    {
        st.master = s.master;
        st.last_failover = s.last_failover.clone();
        st.last_action = s.last_action.clone();
    }
    let mut machine = Machine::new(env.grace, last_master);
    let mut said = String::new();
    journal.note(&format!(
        "controlling {} and {}, last master {}{}",
        servers[0].cfg.pg_host,
        servers[1].cfg.pg_host,
        machine.master(),
        match &env.fence {
            Some(f) => format!(
                " (cluster lease epoch {}, state {})",
                f.epoch,
                if saved.is_some() {
                    "resumed from the cluster"
                } else {
                    "new"
                }
            ),
            None => String::new(),
        }
    ));
    let mut probes: [Probe; 2] = [
        (Ssh::Down, Some("not probed yet".into())),
        (Ssh::Down, Some("not probed yet".into())),
    ];
    let mut last_probe = None;
    let mut tick = tokio::time::interval(env.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A loaded host may take a second or two to answer; a poll is
        // never allowed to hold up the next one for long either.
        let sql_limit = env
            .poll
            .clamp(Duration::from_secs(2), Duration::from_secs(5));
        let m = &servers[machine.master()].cfg;
        let probe_due = last_probe.is_none_or(|t: Instant| t.elapsed() >= SSH_EVERY);
        let (p0, p1, s0, s1, referee) = tokio::join!(
            observe::poll(&servers[0].sql, sql_limit),
            observe::poll(&servers[1].sql, sql_limit),
            probe(&env.remote, &servers[0], probe_due),
            probe(&env.remote, &servers[1], probe_due),
            referee::ask(
                group.referee.as_deref(),
                &m.pg_host,
                m.pg_port,
                REFEREE_LIMIT
            ),
        );
        let polls = [p0, p1];
        for (slot, fresh) in probes.iter_mut().zip([s0, s1]) {
            if let Some(f) = fresh {
                *slot = f;
            }
        }
        if probe_due {
            last_probe = Some(Instant::now());
        }
        let obs = Observation {
            roles: [0, 1].map(|i| polls[i].as_ref().map_or(Role::Down, |p| p.role(env.grace))),
            ssh: [0, 1].map(|i| probes[i].0),
            referee,
        };
        let now = Instant::now();
        let actions = machine.step(now, &obs);
        let situation = describe(machine.situation(), now);
        if situation != said {
            announce(&journal, machine.situation(), &situation, &polls, &probes);
            said = situation.clone();
        }
        publish(
            &status, &group, &machine, &situation, &obs, &polls, &probes, now,
        );
        for action in actions {
            let (name, reason) = explain(&action, machine.situation(), &servers, env.grace, &obs);
            journal.note(&format!("action {name}: {reason}"));
            let result = carry_out(&env, &servers, &action).await;
            machine.finished(Instant::now(), &action, result.is_ok());
            if result.is_ok()
                && let Action::Promote { server } = action
            {
                env.pins.set_last_master(&key, server);
            }
            let shown = match &result {
                Ok(done) => format!("ok: {done}"),
                Err(e) => format!("failed: {e}"),
            };
            let subject = format!("{name}: {}", if result.is_ok() { "done" } else { "failed" });
            journal.alert(&subject, &format!("{reason}\n{shown}"));
            if let Ok(mut s) = status.lock() {
                let last = LastAction {
                    at: clock::stamp(&clock::now()),
                    action: name,
                    reason,
                    result: shown,
                };
                if matches!(action, Action::Promote { .. }) {
                    s.last_failover = Some(last.clone());
                }
                s.last_action = Some(last);
            }
        }
        if let Some(f) = &env.fence {
            save(f, &key, &status, &mut saved).await;
        }
    }
}

/// Stores the group's state in the cluster when it changed since it was
/// last stored (a failed write is tried again at the next poll).
async fn save(f: &Fence, key: &str, status: &Mutex<GroupStatus>, saved: &mut Option<GroupState>) {
    let now = match status.lock() {
        Ok(s) => GroupState {
            master: s.master,
            last_failover: s.last_failover.clone(),
            last_action: s.last_action.clone(),
        },
        Err(_) => return,
    };
    if saved.as_ref() != Some(&now) && f.set(PG, &state_key(key), &now).await {
        *saved = Some(now);
    }
}

/// A server's SSH as last probed, with the error if any.
type Probe = (Ssh, Option<String>);

/// Logs in to a server when `due`; `None` keeps the previous result.
async fn probe(remote: &Remote, server: &Server, due: bool) -> Option<Probe> {
    if !due {
        return None;
    }
    Some(match remote.probe(&server.ssh, PROBE_LIMIT).await {
        Ok(()) => (Ssh::Up, None),
        Err(e @ RemoteError::KeyChanged { .. }) => (Ssh::KeyChanged, Some(e.to_string())),
        Err(e) => (Ssh::Down, Some(e.to_string())),
    })
}

async fn carry_out(env: &Env, servers: &[Server; 2], action: &Action) -> Result<String, ActError> {
    match *action {
        Action::Fence { server } => match act::fence(&env.remote, &servers[server]).await {
            Ok(()) => Ok("stopped".into()),
            // The quorum already said it is gone; a host we cannot reach
            // is recorded and the failover goes on.
            Err(e) => Ok(format!("could not fence ({e}); relying on the quorum")),
        },
        Action::Promote { server } => act::promote(&env.remote, &servers[server])
            .await
            .map(|tl| format!("master now, timeline {tl}")),
        Action::Rebuild { server, from } => {
            act::rebuild(&env.remote, &servers[server], &servers[from])
                .await
                .map(|()| "streaming from the master".into())
        }
    }
}

/// The action's name and the reason a reader of the log needs.
fn explain(
    action: &Action,
    situation: &Situation,
    servers: &[Server; 2],
    grace: Duration,
    obs: &Observation,
) -> (String, String) {
    let name = |i: usize| servers[i].cfg.pg_host.clone();
    match *action {
        Action::Fence { server } => (
            format!("fence {}", name(server)),
            format!(
                "failover: fence the old master before promoting (referee: {:?})",
                obs.referee
            ),
        ),
        Action::Promote { server } => (
            format!("promote {}", name(server)),
            format!(
                "no master for {} s (grace), quorum: no replica receiving, referee {:?}",
                grace.as_secs(),
                obs.referee
            ),
        ),
        Action::Rebuild { server, from } => (
            format!("rebuild {} from {}", name(server), name(from)),
            match situation {
                Situation::TwoMasters => "two masters; this one was not master last".to_string(),
                _ => format!(
                    "replica down or not streaming for {} s (grace)",
                    grace.as_secs()
                ),
            },
        ),
    }
}

fn describe(s: &Situation, now: Instant) -> String {
    match s {
        Situation::Healthy => "healthy".into(),
        Situation::Halted(why) => format!("halted: {why}"),
        Situation::MasterLost { .. } => "master lost, waiting for the grace period".into(),
        Situation::NoQuorum(why) => format!("no quorum for failover: {why}"),
        Situation::ReplicaUnhealthy { rebuild_due } if *rebuild_due > now => {
            "replica down or not streaming".into()
        }
        Situation::ReplicaUnhealthy { .. } => {
            "replica down or not streaming; rebuild when its host answers".into()
        }
        Situation::TwoMasters => "two masters".into(),
        Situation::NothingReachable => "neither server answers SQL".into(),
    }
}

/// Situation changes go to the log; those needing a human are alerts,
/// with what failed on each server.
fn announce(
    journal: &Journal,
    s: &Situation,
    text: &str,
    polls: &[Result<Polled, PollError>; 2],
    probes: &[Probe; 2],
) {
    let detail = || {
        (0..2)
            .flat_map(|i| {
                [
                    polls[i]
                        .as_ref()
                        .err()
                        .map(|e| format!("server {i} sql: {e}")),
                    probes[i].1.as_ref().map(|e| format!("server {i} ssh: {e}")),
                ]
            })
            .flatten()
            .collect::<Vec<_>>()
            .join("\n")
    };
    match s {
        Situation::Halted(_) => journal.alert("halted", &format!("{text}\n{}", detail())),
        Situation::NoQuorum(_) | Situation::NothingReachable | Situation::MasterLost { .. } => {
            journal.alert(text, &detail())
        }
        _ => journal.note(text),
    }
}

#[allow(clippy::too_many_arguments)]
fn publish(
    status: &Mutex<GroupStatus>,
    group: &PgGroupResolved,
    machine: &Machine,
    situation: &str,
    obs: &Observation,
    polls: &[Result<Polled, PollError>; 2],
    probes: &[Probe; 2],
    now: Instant,
) {
    let pending = match machine.situation() {
        Situation::MasterLost { due } => Some(Pending {
            what: "failover",
            in_seconds: due.saturating_duration_since(now).as_secs_f64(),
        }),
        Situation::ReplicaUnhealthy { rebuild_due } => Some(Pending {
            what: "rebuild",
            in_seconds: rebuild_due.saturating_duration_since(now).as_secs_f64(),
        }),
        _ => None,
    };
    let servers = (0..2)
        .map(|i| {
            let cfg = &group.servers[i];
            ServerStatus {
                pg: format!("{}:{}", cfg.pg_host, cfg.pg_port),
                ssh: format!("{}@{}:{}", cfg.ssh_user, cfg.ssh_host, cfg.ssh_port),
                role: match obs.roles[i] {
                    Role::Down => "down",
                    Role::Primary { .. } => "primary",
                    Role::Standby {
                        receiving: true, ..
                    } => "standby",
                    Role::Standby { .. } => "standby (not receiving)",
                }
                .into(),
                ssh_state: format!("{:?}", obs.ssh[i]).to_lowercase(),
                error: [
                    polls[i].as_ref().err().map(|e| format!("sql: {e}")),
                    probes[i].1.as_ref().map(|e| format!("ssh: {e}")),
                ]
                .into_iter()
                .flatten()
                .reduce(|a, b| format!("{a}; {b}")),
                polled: polls[i].as_ref().ok().cloned(),
            }
        })
        .collect();
    if let Ok(mut s) = status.lock() {
        s.master = machine.master();
        s.situation = situation.to_string();
        s.pending = pending;
        s.referee = format!("{:?}", obs.referee).to_lowercase();
        s.servers = servers;
    }
}
