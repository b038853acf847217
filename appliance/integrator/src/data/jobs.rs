//! The scheduler's job table: each job's spec, next and last run, and
//! the result of the last run.

use rusqlite::params;
use serde::Serialize;

use super::{Data, DataError};
use alpharen_cluster::claims::{self, Claim};

fn claim_key(name: &str, at: i64) -> String {
    format!("{name}@{at}")
}

#[derive(Debug, Clone, Serialize)]
pub struct JobRow {
    pub name: String,
    pub spec: String,
    pub first_seen: i64,
    pub next_run: Option<i64>,
    pub last_run: Option<i64>,
    pub last_result: Option<String>,
    pub last_trigger: Option<String>,
    pub last_ms: Option<f64>,
    pub runs: i64,
}

impl Data {
    pub fn job_rows(&self) -> Result<Vec<JobRow>, DataError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT name, spec, first_seen, next_run, last_run, last_result, last_trigger, last_ms, runs
                 FROM integrator_jobs",
            )?;
            let rows = st.query_map([], |r| {
                Ok(JobRow {
                    name: r.get(0)?,
                    spec: r.get(1)?,
                    first_seen: r.get(2)?,
                    next_run: r.get(3)?,
                    last_run: r.get(4)?,
                    last_result: r.get(5)?,
                    last_trigger: r.get(6)?,
                    last_ms: r.get(7)?,
                    runs: r.get(8)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    pub fn job_upsert(
        &self,
        name: &str,
        spec: &str,
        first_seen: i64,
        next_run: Option<i64>,
    ) -> Result<(), DataError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO integrator_jobs (name, spec, first_seen, next_run) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET spec = ?2, first_seen = ?3, next_run = ?4",
                params![name, spec, first_seen, next_run],
            )?;
            Ok(())
        })
    }

    pub fn job_next(&self, name: &str, next_run: Option<i64>) -> Result<(), DataError> {
        self.with(|c| {
            c.execute(
                "UPDATE integrator_jobs SET next_run = ?2 WHERE name = ?1",
                params![name, next_run],
            )?;
            Ok(())
        })
    }

    pub fn job_result(
        &self,
        name: &str,
        at: i64,
        result: &str,
        trigger: &str,
        ms: f64,
        ran: bool,
    ) -> Result<(), DataError> {
        self.with(|c| {
            c.execute(
                "UPDATE integrator_jobs SET last_run = ?2, last_result = ?3, last_trigger = ?4,
                 last_ms = ?5, runs = runs + ?6 WHERE name = ?1",
                params![name, at, result, trigger, ms, i64::from(ran)],
            )?;
            Ok(())
        })
    }

    /// Writes `claim` as the claim of job `name`'s scheduled fire `at` in
    /// the cluster if it holds revision `expect` (`None`: no claim yet),
    /// so a fire runs on one member whichever members schedule it.
    /// `None` outside a cluster: the node runs every fire.
    pub fn claim_job(
        &self,
        name: &str,
        at: i64,
        expect: Option<u64>,
        claim: &Claim,
    ) -> Result<Option<claims::Write>, DataError> {
        match self.cluster.kv()? {
            None => Ok(None),
            Some(c) => Ok(Some(c.claim_write(
                "job",
                &claim_key(name, at),
                expect,
                claim,
            )?)),
        }
    }

    /// The claim of job `name`'s fire `at` in the cluster (`None`
    /// outside a cluster or when there is none).
    pub fn job_claim(&self, name: &str, at: i64) -> Result<Option<claims::Stored>, DataError> {
        match self.cluster.kv()? {
            None => Ok(None),
            Some(c) => Ok(c.claim_read("job", &claim_key(name, at))?),
        }
    }

    pub fn job_forget_others(&self, keep: &[&str]) -> Result<(), DataError> {
        self.with(|c| {
            let names: Vec<String> = {
                let mut st = c.prepare("SELECT name FROM integrator_jobs")?;
                let rows = st.query_map([], |r| r.get(0))?;
                rows.collect::<Result<Vec<String>, _>>()?
            };
            for n in names.iter().filter(|n| !keep.contains(&n.as_str())) {
                c.execute("DELETE FROM integrator_jobs WHERE name = ?1", params![n])?;
            }
            Ok(())
        })
    }
}
