//! The command tree. Each group lives in its own file and knows how to call
//! the node and print the answer.

mod acme;
mod backup;
mod cluster;
mod config;
mod dpx;
mod integrator;
mod mail;
mod net;
mod pgha;
mod reaction;
mod syslog;
mod system;
mod update;
mod user;
mod vpn;

use crate::client::NodeClient;
use clap::Subcommand;

use crate::CtlError;
use crate::output::Output;

/// A file's text, or standard input's for `-` (over ssh: what the client
/// pipes in).
pub(crate) fn read_input(file: &std::path::Path) -> Result<String, CtlError> {
    let read = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    };
    read.map_err(|e| CtlError::Io(format!("cannot read {}: {e}", file.display())))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Node name, version, uptime, pending change and services.
    Status,
    /// Every service with its state, pid and restarts.
    Services,
    /// Restart a service (also revives one marked failed); returns once
    /// the new process runs and, for a built-in, says it is serving.
    Restart { service: String },
    /// Show captured service output.
    Logs(system::Logs),
    /// Configuration: show, apply, set, history, diff, rollback, confirm, export.
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Node users (console, API and ssh logins).
    #[command(subcommand)]
    User(user::UserCmd),
    /// Backup of configuration, users and secrets in one file.
    #[command(subcommand)]
    Backup(backup::BackupCmd),
    /// Mail service: queue, flush, delete, retry, test, notify.
    #[command(subcommand)]
    Mail(mail::MailCmd),
    /// PostgreSQL HA: groups with roles, lag, last action, pending timers.
    #[command(subcommand)]
    Pgha(pgha::PghaCmd),
    /// Integrator: deploy Python services, versions, stats, passwords, pings.
    #[command(subcommand)]
    Integrator(integrator::IntegratorCmd),
    /// Network: links, addresses with origin, routes, DHCP leases, DNS, time.
    Net,
    /// VPN (WireGuard): status, road-warrior peers.
    Vpn(vpn::VpnArgs),
    /// Authoritative DNS (dpx.zone): status, records.
    Dpx(dpx::DpxArgs),
    /// Remote syslog: collectors' state, a test line.
    #[command(subcommand)]
    Syslog(syslog::SyslogCmd),
    /// Reaction engine: agents, incidents, runs; approve, deny, start, retry, skip.
    #[command(subcommand)]
    Reaction(reaction::ReactionCmd),
    /// The console's ACME certificate: status, renew now.
    #[command(subcommand)]
    Acme(acme::AcmeCmd),
    /// Cluster of nodes on NATS JetStream: init, join, token, status, leave.
    #[command(subcommand)]
    Cluster(cluster::ClusterCmd),
    /// Update bundles and the A/B slots: update FILE|-, slots.
    #[command(subcommand)]
    System(update::SystemCmd),
    /// Reboot the node: now, or at a local time (--at HH:MM, the node's
    /// time zone), or cancel a scheduled reboot (--cancel).
    Reboot(update::RebootArgs),
    /// Power the node off (stops the supervisor in development mode).
    Poweroff,
    /// Version of this CLI.
    Version,
}

impl Command {
    pub fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        match self {
            Command::Status => system::status(client, out),
            Command::Services => system::services(client, out),
            Command::Restart { service } => system::restart(client, out, &service),
            Command::Logs(l) => l.run(client, out),
            Command::Config(c) => c.run(client, out),
            Command::User(u) => u.run(client, out),
            Command::Backup(b) => b.run(client, out),
            Command::Mail(m) => m.run(client, out),
            Command::Pgha(p) => p.run(client, out),
            Command::Integrator(i) => i.run(client, out),
            Command::Net => net::status(client, out),
            Command::Vpn(v) => v.run(client, out),
            Command::Dpx(d) => d.run(client, out),
            Command::Syslog(s) => s.run(client, out),
            Command::Reaction(r) => r.run(client, out),
            Command::Acme(a) => a.run(client, out),
            Command::Cluster(c) => c.run(client, out),
            Command::System(s) => s.run(client, out),
            Command::Reboot(r) => r.run(client, out),
            Command::Poweroff => system::stop(client, out, alpharen_rpc::system::POWEROFF),
            Command::Version => {
                println!("alpharen {}", env!("CARGO_PKG_VERSION"));
                Ok(())
            }
        }
    }
}
