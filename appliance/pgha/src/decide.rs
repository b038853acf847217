//! The failover decision for one group, as a pure state machine: what was
//! observed and when in, actions out. No sockets, no clock of its own, so
//! every case is tested with a paused tokio clock.
//!
//! Rules (seed `pg_controller`, issue #9):
//! - one master: the replica must stream from it; a replica that is down or
//!   not streaming for the grace period is rebuilt from the master;
//! - no master: after the grace period, and only with a quorum (no replica
//!   still receiving from a master, the referee agrees or is reachable),
//!   fence the old master, then promote the best standby;
//! - two masters: keep the one that was master last, rebuild the other,
//!   only while the controller is on the majority side and the other's
//!   host answers SSH;
//! - a changed SSH host key halts the group until the service restarts.

use tokio::time::{Duration, Instant};

/// What the controller saw of one server's PostgreSQL in one poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// No SQL connection within the poll's timeout.
    Down,
    Primary {
        lsn: u64,
    },
    /// `receiving`: its WAL receiver streams and heard from the master
    /// within the grace period.
    Standby {
        receiving: bool,
        lsn: u64,
    },
}

/// What the controller saw of one server's SSH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ssh {
    Up,
    Down,
    /// The host key differs from the one pinned on first use.
    KeyChanged,
}

/// The referee's answer about the current master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Referee {
    /// None configured: the replica's view alone backs the controller's.
    None,
    /// Could not be asked: the controller may be the one cut off.
    Unreachable,
    /// A plain `host:port` referee answered: the controller is on the
    /// majority side, no opinion on the master.
    Reachable,
    /// An HTTP referee still reaches the master.
    SeesMaster,
    /// An HTTP referee cannot reach the master either.
    MasterDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub roles: [Role; 2],
    pub ssh: [Ssh; 2],
    pub referee: Referee,
}

/// Something to do on a server, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Stop PostgreSQL so a lost master cannot come back as a second one.
    Fence {
        server: usize,
    },
    Promote {
        server: usize,
    },
    /// Stop, move the data folder aside, base backup from `from`, start.
    Rebuild {
        server: usize,
        from: usize,
    },
}

/// The group's situation as a user reads it in `ctl pgha status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Situation {
    Healthy,
    Halted(String),
    /// The master is lost; failover is due at the instant given.
    MasterLost {
        due: Instant,
    },
    /// Failover is due but blocked, and why.
    NoQuorum(&'static str),
    ReplicaUnhealthy {
        rebuild_due: Instant,
    },
    TwoMasters,
    NothingReachable,
}

pub struct Machine {
    grace: Duration,
    /// Index of the server that was master last (the seed's rule for two
    /// masters and the initial choice).
    master: usize,
    lost_since: Option<Instant>,
    unhealthy_since: Option<Instant>,
    halted: Option<String>,
    situation: Situation,
}

impl Machine {
    pub fn new(grace: Duration, last_master: usize) -> Machine {
        Machine {
            grace,
            master: last_master.min(1),
            lost_since: None,
            unhealthy_since: None,
            halted: None,
            situation: Situation::Healthy,
        }
    }

    pub fn master(&self) -> usize {
        self.master
    }

    pub fn situation(&self) -> &Situation {
        &self.situation
    }

    /// One poll's worth of decisions.
    pub fn step(&mut self, now: Instant, obs: &Observation) -> Vec<Action> {
        if self.halted.is_none()
            && let Some(i) = obs.ssh.iter().position(|s| *s == Ssh::KeyChanged)
        {
            self.halted = Some(format!(
                "the SSH host key of server {i} changed; the group stops acting until it is checked"
            ));
        }
        if let Some(why) = &self.halted {
            self.situation = Situation::Halted(why.clone());
            return Vec::new();
        }
        let primaries: Vec<usize> = (0..2)
            .filter(|&i| matches!(obs.roles[i], Role::Primary { .. }))
            .collect();
        match primaries.as_slice() {
            [_, _] => self.two_masters(obs),
            [p] => self.one_master(now, *p, obs),
            _ => self.no_master(now, obs),
        }
    }

    /// Both claim to be master: keep the last one, rebuild the other.
    fn two_masters(&mut self, obs: &Observation) -> Vec<Action> {
        self.lost_since = None;
        self.unhealthy_since = None;
        if obs.referee == Referee::Unreachable {
            self.situation = Situation::NoQuorum("two masters, but the referee is unreachable");
            return Vec::new();
        }
        self.situation = Situation::TwoMasters;
        let other = 1 - self.master;
        if obs.ssh[other] != Ssh::Up {
            return Vec::new();
        }
        vec![Action::Rebuild {
            server: other,
            from: self.master,
        }]
    }

    fn one_master(&mut self, now: Instant, p: usize, obs: &Observation) -> Vec<Action> {
        self.master = p;
        self.lost_since = None;
        if matches!(
            obs.roles[1 - p],
            Role::Standby {
                receiving: true,
                ..
            }
        ) {
            self.unhealthy_since = None;
            self.situation = Situation::Healthy;
            return Vec::new();
        }
        let since = *self.unhealthy_since.get_or_insert(now);
        let due = since + self.grace;
        self.situation = Situation::ReplicaUnhealthy { rebuild_due: due };
        if now < due || obs.ssh[1 - p] != Ssh::Up {
            return Vec::new();
        }
        vec![Action::Rebuild {
            server: 1 - p,
            from: p,
        }]
    }

    fn no_master(&mut self, now: Instant, obs: &Observation) -> Vec<Action> {
        self.unhealthy_since = None;
        let Some(candidate) = self.candidate(obs) else {
            self.situation = Situation::NothingReachable;
            return Vec::new();
        };
        let since = *self.lost_since.get_or_insert(now);
        let due = since + self.grace;
        if now < due {
            self.situation = Situation::MasterLost { due };
            return Vec::new();
        }
        if let Err(why) = self.quorum(obs) {
            self.situation = Situation::NoQuorum(why);
            return Vec::new();
        }
        let old = self.master;
        let mut actions = Vec::new();
        if old != candidate {
            actions.push(Action::Fence { server: old });
        }
        actions.push(Action::Promote { server: candidate });
        self.master = candidate;
        self.lost_since = None;
        self.situation = Situation::Healthy;
        actions
    }

    /// The standby to promote: the only one, or of two the one further
    /// ahead in WAL (the last master on a tie).
    fn candidate(&self, obs: &Observation) -> Option<usize> {
        match obs.roles {
            [Role::Standby { lsn: a, .. }, Role::Standby { lsn: b, .. }] => Some(match a.cmp(&b) {
                std::cmp::Ordering::Greater => 0,
                std::cmp::Ordering::Less => 1,
                std::cmp::Ordering::Equal => self.master,
            }),
            [Role::Standby { .. }, _] => Some(0),
            [_, Role::Standby { .. }] => Some(1),
            _ => None,
        }
    }

    /// Never fail over on the controller's view alone.
    fn quorum(&self, obs: &Observation) -> Result<(), &'static str> {
        if obs.roles.iter().any(|r| {
            matches!(
                r,
                Role::Standby {
                    receiving: true,
                    ..
                }
            )
        }) {
            return Err("a replica still receives WAL from the master");
        }
        let master_down = obs.roles[self.master] == Role::Down;
        match obs.referee {
            Referee::Unreachable => {
                Err("the referee is unreachable; this controller may be cut off")
            }
            Referee::SeesMaster if master_down => Err("the referee still sees the master"),
            _ => Ok(()),
        }
    }

    /// The result of an action: a failed promotion gives the old master
    /// another grace period to come back.
    pub fn finished(&mut self, now: Instant, action: &Action, ok: bool) {
        match action {
            Action::Promote { server } if !ok => {
                self.master = 1 - server;
                self.lost_since = Some(now);
            }
            Action::Rebuild { .. } => self.unhealthy_since = Some(now),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    const GRACE: Duration = Duration::from_secs(30);
    const POLL: Duration = Duration::from_secs(2);

    fn primary() -> Role {
        Role::Primary { lsn: 100 }
    }
    fn streaming() -> Role {
        Role::Standby {
            receiving: true,
            lsn: 100,
        }
    }
    fn orphan() -> Role {
        Role::Standby {
            receiving: false,
            lsn: 100,
        }
    }
    fn obs(a: Role, b: Role, referee: Referee) -> Observation {
        Observation {
            roles: [a, b],
            ssh: [Ssh::Up, Ssh::Up],
            referee,
        }
    }

    /// Polls `obs` every POLL for `span`, collecting all actions.
    async fn run(m: &mut Machine, obs: Observation, span: Duration) -> Vec<Action> {
        let end = Instant::now() + span;
        let mut all = Vec::new();
        while Instant::now() < end {
            all.extend(m.step(Instant::now(), &obs));
            advance(POLL).await;
        }
        all
    }

    #[tokio::test(start_paused = true)]
    async fn healthy_pair_does_nothing() {
        let mut m = Machine::new(GRACE, 0);
        let o = obs(primary(), streaming(), Referee::Reachable);
        assert!(run(&mut m, o, GRACE * 3).await.is_empty());
        assert_eq!(m.situation(), &Situation::Healthy);
    }

    #[tokio::test(start_paused = true)]
    async fn master_down_fences_then_promotes_after_grace_only() {
        let mut m = Machine::new(GRACE, 0);
        let o = obs(Role::Down, orphan(), Referee::MasterDown);
        assert!(run(&mut m, o, GRACE - POLL).await.is_empty());
        assert!(matches!(m.situation(), Situation::MasterLost { .. }));
        assert_eq!(
            run(&mut m, o, POLL * 2).await,
            vec![Action::Fence { server: 0 }, Action::Promote { server: 1 }]
        );
        assert_eq!(m.master(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn without_referee_the_replica_view_is_enough() {
        let mut m = Machine::new(GRACE, 0);
        let o = obs(Role::Down, orphan(), Referee::None);
        let actions = run(&mut m, o, GRACE + POLL).await;
        assert_eq!(actions.last(), Some(&Action::Promote { server: 1 }));
    }

    #[tokio::test(start_paused = true)]
    async fn controller_partitioned_from_master_does_not_promote() {
        // The replica still streams and the referee still sees the master.
        let mut m = Machine::new(GRACE, 0);
        let o = obs(Role::Down, streaming(), Referee::SeesMaster);
        assert!(run(&mut m, o, GRACE * 3).await.is_empty());
        assert!(matches!(m.situation(), Situation::NoQuorum(_)));
        // Even once the replica lost it, the referee's view blocks.
        let o = obs(Role::Down, orphan(), Referee::SeesMaster);
        assert!(run(&mut m, o, GRACE * 3).await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn referee_unreachable_blocks_failover() {
        let mut m = Machine::new(GRACE, 0);
        let o = obs(Role::Down, orphan(), Referee::Unreachable);
        assert!(run(&mut m, o, GRACE * 3).await.is_empty());
        assert_eq!(
            m.situation(),
            &Situation::NoQuorum("the referee is unreachable; this controller may be cut off")
        );
        // The referee comes back and agrees: failover at once, the grace
        // having long passed.
        let o = obs(Role::Down, orphan(), Referee::MasterDown);
        assert_eq!(
            m.step(Instant::now(), &o),
            vec![Action::Fence { server: 0 }, Action::Promote { server: 1 }]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn controller_cut_from_everything_does_nothing() {
        let mut m = Machine::new(GRACE, 0);
        let o = Observation {
            roles: [Role::Down, Role::Down],
            ssh: [Ssh::Down, Ssh::Down],
            referee: Referee::Unreachable,
        };
        assert!(run(&mut m, o, GRACE * 3).await.is_empty());
        assert_eq!(m.situation(), &Situation::NothingReachable);
    }

    #[tokio::test(start_paused = true)]
    async fn flapping_master_never_reaches_the_grace() {
        let mut m = Machine::new(GRACE, 0);
        let down = obs(Role::Down, orphan(), Referee::MasterDown);
        let up = obs(primary(), streaming(), Referee::Reachable);
        for _ in 0..20 {
            assert!(run(&mut m, down, GRACE - POLL * 2).await.is_empty());
            assert!(run(&mut m, up, POLL).await.is_empty());
        }
        assert_eq!(m.master(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn replica_down_is_rebuilt_after_grace_when_its_host_answers() {
        let mut m = Machine::new(GRACE, 0);
        let mut o = obs(primary(), Role::Down, Referee::Reachable);
        o.ssh[1] = Ssh::Down;
        assert!(run(&mut m, o, GRACE * 2).await.is_empty());
        o.ssh[1] = Ssh::Up;
        let rebuild = Action::Rebuild { server: 1, from: 0 };
        assert_eq!(run(&mut m, o, POLL).await, vec![rebuild.clone()]);
        // A failed rebuild waits another grace period.
        m.finished(Instant::now(), &rebuild, false);
        assert!(run(&mut m, o, GRACE - POLL).await.is_empty());
        assert_eq!(run(&mut m, o, POLL * 2).await, vec![rebuild]);
    }

    #[tokio::test(start_paused = true)]
    async fn two_masters_rebuild_the_one_that_was_not_master_last() {
        let mut m = Machine::new(GRACE, 1);
        let o = obs(primary(), primary(), Referee::Reachable);
        assert_eq!(
            m.step(Instant::now(), &o),
            vec![Action::Rebuild { server: 0, from: 1 }]
        );
        let cut = obs(primary(), primary(), Referee::Unreachable);
        assert!(m.step(Instant::now(), &cut).is_empty());
        // Not over a host that does not answer SSH: the rebuild would fail.
        let mut no_ssh = obs(primary(), primary(), Referee::Reachable);
        no_ssh.ssh[0] = Ssh::Down;
        assert!(m.step(Instant::now(), &no_ssh).is_empty());
        assert_eq!(m.situation(), &Situation::TwoMasters);
    }

    #[tokio::test(start_paused = true)]
    async fn old_master_returning_after_failover_is_rebuilt() {
        let mut m = Machine::new(GRACE, 0);
        run(
            &mut m,
            obs(Role::Down, orphan(), Referee::MasterDown),
            GRACE + POLL,
        )
        .await;
        assert_eq!(m.master(), 1);
        let back = obs(primary(), primary(), Referee::Reachable);
        assert_eq!(
            m.step(Instant::now(), &back),
            vec![Action::Rebuild { server: 0, from: 1 }]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn two_standbys_promote_the_one_furthest_ahead() {
        let mut m = Machine::new(GRACE, 0);
        let o = obs(
            Role::Standby {
                receiving: false,
                lsn: 10,
            },
            Role::Standby {
                receiving: false,
                lsn: 20,
            },
            Referee::Reachable,
        );
        let actions = run(&mut m, o, GRACE + POLL).await;
        assert_eq!(
            actions,
            vec![Action::Fence { server: 0 }, Action::Promote { server: 1 }]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failed_promotion_waits_another_grace() {
        let mut m = Machine::new(GRACE, 0);
        let o = obs(Role::Down, orphan(), Referee::MasterDown);
        let actions = run(&mut m, o, GRACE + POLL).await;
        m.finished(Instant::now(), &actions[1], false);
        assert_eq!(m.master(), 0);
        assert!(run(&mut m, o, GRACE - POLL).await.is_empty());
        assert_eq!(run(&mut m, o, POLL * 2).await.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn changed_host_key_halts_the_group() {
        let mut m = Machine::new(GRACE, 0);
        let mut o = obs(Role::Down, orphan(), Referee::MasterDown);
        o.ssh[1] = Ssh::KeyChanged;
        assert!(run(&mut m, o, GRACE * 3).await.is_empty());
        assert!(matches!(m.situation(), Situation::Halted(_)));
        // Even when the key looks right again, it stays halted.
        o.ssh[1] = Ssh::Up;
        assert!(run(&mut m, o, GRACE * 3).await.is_empty());
    }
}
