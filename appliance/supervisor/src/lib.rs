//! The node's process tree: PID 1 (`init`), the supervisor that starts,
//! restarts and stops services, and the control socket through which every
//! admin door (CLI, web, ssh) reaches the node.
//!
//! Only the supervisor writes configuration to the store. Services are
//! separate processes; this crate never links their code, it starts them
//! as `alpharen serve NAME` and signals them.

mod access;
mod boot;
pub mod builtin;
mod confirm;
mod control;
mod datafs;
mod error;
mod gate;
pub mod init;
mod install;
mod keyring;
mod login;
mod logs;
mod methods;
mod partition;
/// The Raspberry Pi's tryboot A/B decisions (pure; the installer's I/O
/// for the Pi is not written yet, see docs/update.md).
pub mod pi;
mod pi_disk;
mod policy;
mod premigration;
mod privsep;
mod procstat;
mod service;
mod setup;
mod shared;
mod slotfile;
mod slots;
mod state;
mod supervise;

pub use error::SupervisorError;
pub use state::Options;
pub use supervise::run;
