//! A scheduled fire's claim in a cluster (`alpharen_cluster::claims`):
//! claimed patiently, held while the run is in flight (renewed, then
//! marked done), and watched by the members that lost it, one of which
//! takes it over when its holder died before marking it done.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use alpharen_cluster::claims::{self, Claim, RENEW_EVERY, Read, State, Verdict, Watch};
use alpharen_store::config::Job;

use super::jobs::{spawn_run, wait_for_slot};
use crate::app::App;
use crate::data::now_ms;

/// How long a member keeps trying to claim a fire while the cluster
/// cannot answer (a member died and JetStream elects new stream leaders,
/// a few seconds): the run is late, not lost.
pub const CLAIM_PATIENCE: Duration = Duration::from_secs(60);
/// The pause between two tries of a claim.
const CLAIM_RETRY: Duration = Duration::from_secs(1);
/// How long a careful claim ([`careful`]) waits between its two reads.
const SETTLE: Duration = Duration::from_secs(2);
/// A fire claimed this many seconds after its time (a late scheduler
/// catching up) is claimed carefully.
const LATE_S: i64 = 1;
/// How long after its fire time a member that lost a claim keeps
/// watching it: the claim patience, the lease, and a few reads.
pub const WATCH_FOR_S: i64 = 90;
/// How often a watcher reads the claim.
const WATCH_POLL: Duration = Duration::from_secs(2);
/// At most this many claims watched at once by a member (each is one
/// read every [`WATCH_POLL`]); a lost claim beyond it is not watched.
pub const MAX_WATCHED: u32 = 256;

/// Tries `claim` until it answers or `patience` has passed (then its last
/// error). `claim` must be safe to repeat: its token is the same on every
/// try, so a try that landed but timed out is found as its own.
pub async fn claim_patiently<T, F, Fut>(mut claim: F, patience: Duration) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let give_up = tokio::time::Instant::now() + patience;
    loop {
        match claim().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() + CLAIM_RETRY > give_up => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "claim failed, trying again");
                tokio::time::sleep(CLAIM_RETRY).await;
            }
        }
    }
}

/// A new claim of this member, with a token unique to it.
pub fn new_claim(app: &App) -> Claim {
    let node = app.node_name();
    Claim {
        token: format!("{node} {:016x}", rand::random::<u64>()),
        holder: node,
        state: State::Held,
        written_ms: now_ms(),
    }
}

/// What a patient write of a claim found.
pub enum Claimed {
    /// Not in a cluster: nothing to claim.
    Alone,
    /// This member holds it, at this revision.
    Won(u64),
    /// Another member holds it (or it is gone).
    Lost,
}

/// Whether a new claim (nothing expected under its key) first reads the
/// key twice, [`SETTLE`] apart: when it is tried again after a failure or
/// made late, it likely meets a stream leader elected moments ago, and
/// nats-server 2.9 (still on members updated from an older firmware)
/// lets such a leader answer reads and conditional writes before it has
/// applied the entries in its log, so "nothing there" may overwrite a
/// claim made just before the election (docs/cluster.md).
fn careful(tries: u32, at: i64, now: i64) -> bool {
    tries > 0 || now - at > LATE_S
}

/// The claim under a key read twice, [`SETTLE`] apart, unless the first
/// read found one: a leader that had not applied its log yet has.
async fn settled<F, Fut>(mut read: F) -> Result<Option<claims::Stored>, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<claims::Stored>, String>>,
{
    if let Some(s) = read().await? {
        return Ok(Some(s));
    }
    tokio::time::sleep(SETTLE).await;
    read().await
}

/// Job `name`'s claim of fire `at`, as the stream's leader has it.
async fn read_claim(app: &Arc<App>, name: &str, at: i64) -> Result<Option<claims::Stored>, String> {
    let (app, name) = (app.clone(), name.to_string());
    tokio::task::spawn_blocking(move || app.engine.data.job_claim(&name, at))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("the claim could not be read in the cluster: {e}"))
}

/// What a claim found under its key means for the claim with `token`:
/// its own (a try that landed without answering), or another's.
fn found(s: &claims::Stored, token: &str) -> Claimed {
    if s.has_token(token) {
        Claimed::Won(s.rev)
    } else {
        Claimed::Lost
    }
}

/// Writes `claim` for job `name`'s fire `at` if the claim is still at
/// `expect`, patiently; a try of its own that landed counts as won.
pub async fn write_claim(
    app: &Arc<App>,
    name: &str,
    at: i64,
    expect: Option<u64>,
    claim: &Claim,
    patience: Duration,
) -> Result<Claimed, String> {
    let clustered = app.engine.data.cluster.clustered();
    let mut tries = 0;
    claim_patiently(
        || {
            let settle =
                clustered && expect.is_none() && careful(tries, at, now_ms().div_euclid(1000));
            tries += 1;
            let (app, name, claim) = (app.clone(), name.to_string(), claim.clone());
            async move {
                let token = claim.token.clone();
                if settle && let Some(s) = settled(|| read_claim(&app, &name, at)).await? {
                    return Ok(found(&s, &token));
                }
                let got = tokio::task::spawn_blocking(move || {
                    app.engine.data.claim_job(&name, at, expect, &claim)
                })
                .await
                .map_err(|e| format!("the run could not be claimed: {e}"))?
                .map_err(|e| format!("the run could not be claimed in the cluster: {e}"))?;
                Ok(match got {
                    None => Claimed::Alone,
                    Some(claims::Write::Written(rev)) => Claimed::Won(rev),
                    Some(claims::Write::Refused(s)) => {
                        s.map_or(Claimed::Lost, |s| found(&s, &token))
                    }
                })
            }
        },
        patience,
    )
    .await
}

/// This member's claim of a fire, as last written.
struct Held {
    name: String,
    at: i64,
    claim: Claim,
    rev: u64,
    /// Another member took it over (the holder could not renew it).
    lost: bool,
}

impl Held {
    /// Writes the claim again from its revision, as `state`; the outcome
    /// of a write that did not answer is learnt on the next one.
    async fn write(&mut self, app: &Arc<App>, state: State) -> Result<(), String> {
        let mut next = self.claim.clone();
        next.state = state;
        next.written_ms = now_ms();
        let (app, name, at, rev, body) = (
            app.clone(),
            self.name.clone(),
            self.at,
            self.rev,
            next.clone(),
        );
        let got = tokio::task::spawn_blocking(move || {
            app.engine.data.claim_job(&name, at, Some(rev), &body)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        match got {
            Some(claims::Write::Written(rev)) => {
                self.rev = rev;
                self.claim = next;
                Ok(())
            }
            // An earlier write of ours landed without answering.
            Some(claims::Write::Refused(Some(s))) if s.has_token(&self.claim.token) => {
                self.rev = s.rev;
                match s.claim {
                    Some(c) if c.state == state => Ok(()),
                    _ => Err("an earlier write landed; writing again".into()),
                }
            }
            Some(claims::Write::Refused(s)) => {
                self.lost = true;
                let by = s.and_then(|s| s.claim).map(|c| c.holder);
                tracing::warn!(job = %self.name, at = self.at, taken_by = ?by,
                    "the claim of a fire in flight here was taken over by another member (it could not be renewed in time): the fire may run twice");
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Marks the claim done, patiently: a watcher would take a claim
    /// left held over and run the fire again.
    async fn finish(&mut self, app: &Arc<App>) {
        let give_up = tokio::time::Instant::now() + CLAIM_PATIENCE;
        while !self.lost {
            match self.write(app, State::Done).await {
                Ok(()) => return,
                Err(e) if tokio::time::Instant::now() + CLAIM_RETRY > give_up => {
                    tracing::warn!(job = %self.name, at = self.at, error = %e,
                        "the claim of a fire that ran here could not be marked done: another member may run it again");
                    return;
                }
                Err(e) => {
                    tracing::debug!(job = %self.name, at = self.at, error = %e, "claim not marked done yet");
                    tokio::time::sleep(CLAIM_RETRY).await;
                }
            }
        }
    }
}

/// Runs a fire this member holds the claim of (revision `rev`): waits
/// for a free instance, runs it, renews the claim every [`RENEW_EVERY`]
/// meanwhile (while members still watch it), then marks it done.
pub async fn run_claimed(
    app: Arc<App>,
    job: Job,
    running: Arc<AtomicU32>,
    trigger: &'static str,
    at: i64,
    claim: Claim,
    rev: u64,
) {
    let mut held = Held {
        name: job.name.clone(),
        at,
        claim,
        rev,
        lost: false,
    };
    let max = job.max_instances;
    let run = async {
        if !wait_for_slot(&running, max, CLAIM_PATIENCE).await {
            return false;
        }
        let _ = spawn_run(&app, job, running.clone(), trigger, Some(at)).await;
        true
    };
    tokio::pin!(run);
    let ran = loop {
        tokio::select! {
            ran = &mut run => break ran,
            _ = tokio::time::sleep(RENEW_EVERY) => {
                if !held.lost && now_ms().div_euclid(1000) < at + WATCH_FOR_S
                    && let Err(e) = held.write(&app, State::Held).await
                {
                    tracing::debug!(job = %held.name, at, error = %e, "claim not renewed");
                }
            }
        }
    };
    if ran {
        held.finish(&app).await;
    } else if let Err(e) = app.engine.data.job_result(
        &held.name,
        now_ms().div_euclid(1000),
        "skipped (max_instances reached)",
        trigger,
        0.0,
        false,
    ) {
        tracing::warn!(job = %held.name, error = %e, "cannot record the job result");
    }
}

/// Watches the claim of job `name`'s fire `at`, which another member
/// holds, until it is done or [`WATCH_FOR_S`] after the fire time; takes
/// it over and runs the fire when it stays held at one revision for
/// [`alpharen_cluster::claims::LEASE`]. Not started when [`MAX_WATCHED`] are watched already.
pub async fn watch(app: Arc<App>, name: String, trigger: &'static str, at: i64) {
    let watched = &app.engine.watched;
    if watched.fetch_add(1, Ordering::SeqCst) >= MAX_WATCHED {
        watched.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!(job = %name, at, "too many claims watched; this one is not");
        return;
    }
    watch_until_over(&app, &name, trigger, at).await;
    watched.fetch_sub(1, Ordering::SeqCst);
}

async fn watch_until_over(app: &Arc<App>, name: &str, trigger: &'static str, at: i64) {
    let left = (at + WATCH_FOR_S - now_ms().div_euclid(1000)).max(0);
    let give_up = tokio::time::Instant::now() + Duration::from_secs(left as u64);
    let mut w = Watch::default();
    loop {
        tokio::time::sleep(WATCH_POLL).await;
        if tokio::time::Instant::now() >= give_up {
            tracing::debug!(job = %name, at, "claim no longer watched");
            return;
        }
        let read = match read_claim(app, name, at).await {
            Ok(s) => Read::Found(s),
            Err(_) => Read::Unknown,
        };
        let rev = match w.step(&read, tokio::time::Instant::now()) {
            Verdict::Over => return,
            Verdict::Wait => continue,
            Verdict::TakeOver(rev) => rev,
        };
        let Ok((job, running)) = super::jobs::job_of(app, name) else {
            return; // dropped from the configuration meanwhile
        };
        if !job.enabled {
            return;
        }
        let holder = match &read {
            Read::Found(Some(s)) => s.claim.as_ref().map(|c| c.holder.clone()),
            _ => None,
        };
        let claim = new_claim(app);
        let patience = give_up.saturating_duration_since(tokio::time::Instant::now());
        match write_claim(app, name, at, Some(rev), &claim, patience).await {
            Ok(Claimed::Won(rev)) => {
                tracing::info!(job = %name, at, from = ?holder, "took over the claim of a fire whose holder did not finish it");
                run_claimed(app.clone(), job, running, trigger, at, claim, rev).await;
                return;
            }
            // Another watcher took it: watch the new holder.
            Ok(Claimed::Lost) => {}
            Ok(Claimed::Alone) => return,
            Err(e) => {
                tracing::debug!(job = %name, at, error = %e, "claim not taken over");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_claim_is_tried_again_until_the_cluster_answers() {
        let tries = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let got = claim_patiently(
            || {
                let n = tries.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 4 {
                        Err("no leader".to_string())
                    } else {
                        Ok(true)
                    }
                }
            },
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(got, Ok(true));
        assert_eq!(tries.load(Ordering::SeqCst), 5);
        assert_eq!(started.elapsed(), CLAIM_RETRY * 4);
    }

    #[test]
    fn a_claim_tried_again_or_made_late_is_careful() {
        assert!(!careful(0, 100, 100));
        assert!(!careful(0, 100, 101));
        assert!(careful(0, 100, 102));
        assert!(careful(1, 100, 100));
    }

    fn stored(rev: u64) -> claims::Stored {
        claims::Stored { rev, claim: None }
    }

    #[tokio::test(start_paused = true)]
    async fn a_careful_claim_reads_again_after_the_settle_time() {
        // A leader elected moments ago answers "nothing" first, then the
        // claim it had not applied yet.
        let reads = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let got = settled(|| {
            let n = reads.fetch_add(1, Ordering::SeqCst);
            async move { Ok((n > 0).then(|| stored(7))) }
        })
        .await;
        assert_eq!(got, Ok(Some(stored(7))));
        assert_eq!(started.elapsed(), SETTLE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_found_at_once_is_not_read_again() {
        let reads = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let got = settled(|| {
            reads.fetch_add(1, Ordering::SeqCst);
            async { Ok(Some(stored(3))) }
        })
        .await;
        assert_eq!(got, Ok(Some(stored(3))));
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_race_is_not_tried_again() {
        let tries = AtomicU32::new(0);
        let got = claim_patiently(
            || {
                tries.fetch_add(1, Ordering::SeqCst);
                async { Ok(false) }
            },
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(got, Ok(false));
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_gives_up_after_its_patience_with_the_last_error() {
        let tries = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let got: Result<bool, String> = claim_patiently(
            || {
                let n = tries.fetch_add(1, Ordering::SeqCst);
                async move { Err(format!("try {n}")) }
            },
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(got, Err("try 10".to_string()));
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }
}
