//! One SQL poll of one server (tokio-postgres, no TLS: the servers are on
//! the cluster's private network): its role, WAL position, timeline, and
//! the replication seen from each side — `pg_stat_replication` on a
//! master, `pg_stat_wal_receiver` on a standby.

use std::time::Duration;

use serde::Serialize;
use tokio_postgres::{Client, NoTls};

use crate::decide::Role;

/// How to reach a server's SQL as the replica user.
#[derive(Debug, Clone)]
pub struct SqlTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
}

/// Why a server counts as down.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("no answer within {secs} s")]
    Timeout { secs: u64 },
    #[error(transparent)]
    Sql(#[from] tokio_postgres::Error),
}

/// A standby as its master reports it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Replica {
    pub application_name: String,
    pub client_addr: Option<String>,
    pub state: String,
    pub sync_state: String,
    pub lag_bytes: Option<u64>,
    pub lag_seconds: Option<f64>,
}

/// A standby's own view of its WAL receiver.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Receiver {
    pub status: String,
    pub sender_host: Option<String>,
    /// Seconds since the last message from the master.
    pub silence_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Polled {
    pub primary: bool,
    pub lsn: u64,
    pub timeline: Option<i32>,
    pub replicas: Vec<Replica>,
    pub receiver: Option<Receiver>,
}

impl Polled {
    /// The decision's view; `grace` bounds how long a silent WAL receiver
    /// still counts as receiving.
    pub fn role(&self, grace: Duration) -> Role {
        if self.primary {
            return Role::Primary { lsn: self.lsn };
        }
        let receiving = self.receiver.as_ref().is_some_and(|r| {
            r.status == "streaming" && r.silence_seconds.is_none_or(|s| s < grace.as_secs_f64())
        });
        Role::Standby {
            receiving,
            lsn: self.lsn,
        }
    }
}

async fn connect(t: &SqlTarget, limit: Duration) -> Result<Client, PollError> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&t.host)
        .port(t.port)
        .user(&t.user)
        .dbname(&t.database)
        .application_name("alpharen-pgha")
        .connect_timeout(limit);
    if let Some(p) = &t.password {
        cfg.password(p);
    }
    let (client, conn) = tokio::time::timeout(limit, cfg.connect(NoTls))
        .await
        .map_err(|_| PollError::Timeout {
            secs: limit.as_secs(),
        })??;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Polls one server; `Err` is the reason it counts as down.
pub async fn poll(t: &SqlTarget, limit: Duration) -> Result<Polled, PollError> {
    tokio::time::timeout(limit, poll_inner(t, limit))
        .await
        .map_err(|_| PollError::Timeout {
            secs: limit.as_secs(),
        })?
}

async fn poll_inner(t: &SqlTarget, limit: Duration) -> Result<Polled, PollError> {
    let c = connect(t, limit).await?;
    let row = c
        .query_one(
            "SELECT pg_is_in_recovery(),
                    (CASE WHEN pg_is_in_recovery()
                          THEN coalesce(pg_last_wal_replay_lsn(), pg_last_wal_receive_lsn(), '0/0')
                          ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::text,
                    (SELECT timeline_id FROM pg_control_checkpoint())",
            &[],
        )
        .await?;
    let in_recovery: bool = row.get(0);
    let lsn = row.get::<_, String>(1).parse().unwrap_or(0);
    let timeline: Option<i32> = row.get(2);
    let mut polled = Polled {
        primary: !in_recovery,
        lsn,
        timeline,
        replicas: Vec::new(),
        receiver: None,
    };
    if in_recovery {
        polled.receiver = c
            .query_opt(
                "SELECT status, sender_host,
                        extract(epoch FROM now() - last_msg_receipt_time)::float8
                   FROM pg_stat_wal_receiver",
                &[],
            )
            .await?
            .map(|r| Receiver {
                status: r.get(0),
                sender_host: r.get(1),
                silence_seconds: r.get(2),
            });
    } else {
        polled.replicas = c
            .query(
                "SELECT coalesce(application_name, ''), client_addr::text, coalesce(state, ''),
                        coalesce(sync_state, ''), (pg_current_wal_lsn() - replay_lsn)::text,
                        extract(epoch FROM replay_lag)::float8
                   FROM pg_stat_replication",
                &[],
            )
            .await?
            .iter()
            .map(|r| Replica {
                application_name: r.get(0),
                client_addr: r.get(1),
                state: r.get(2),
                sync_state: r.get(3),
                lag_bytes: r
                    .get::<_, Option<String>>(4)
                    .and_then(|s| s.parse::<f64>().ok())
                    .map(|b| b.max(0.0) as u64),
                lag_seconds: r.get(5),
            })
            .collect();
    }
    Ok(polled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standby(status: &str, silence: Option<f64>) -> Polled {
        Polled {
            primary: false,
            lsn: 7,
            timeline: Some(1),
            replicas: Vec::new(),
            receiver: Some(Receiver {
                status: status.into(),
                sender_host: None,
                silence_seconds: silence,
            }),
        }
    }

    #[test]
    fn a_silent_receiver_stops_counting_after_the_grace() {
        let grace = Duration::from_secs(5);
        let receiving = |p: Polled| {
            matches!(
                p.role(grace),
                Role::Standby {
                    receiving: true,
                    ..
                }
            )
        };
        assert!(receiving(standby("streaming", Some(1.0))));
        assert!(!receiving(standby("streaming", Some(6.0))));
        assert!(!receiving(standby("waiting", Some(0.0))));
    }
}
