//! The `pgha` service: the seed's `pg_controller`. For each configured
//! group of two PostgreSQL servers it polls both over SQL and SSH, asks the
//! referee, decides with the pure state machine in [`decide`] and acts over
//! SSH (fence, promote, rebuild). Status is answered on
//! `<state>/run/pgha.sock`.
//!
//! This crate reads its `[pgha]` section and its secrets from the store and
//! keeps its own tables there (pinned SSH host keys, the last master of each
//! group); it never writes configuration and never talks to other services
//! except through the control socket (notifications).

pub mod decide;
