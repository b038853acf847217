//! `alpharen ctl`: the admin CLI. It talks to the control socket, so the
//! ssh door can run the very same commands; with `--node URL` (`remote`)
//! the commands that have an API route go to a node elsewhere over HTTPS.
//! One file per command group under `cmd/`; `output` renders tables for
//! people and JSON for scripts.

mod client;
mod cmd;
mod download;
mod output;
mod remote;

use std::path::PathBuf;

use alpharen_rpc::{Client, ClientError};
use clap::Parser;

pub use cmd::Command;

#[derive(Debug, Parser)]
#[command(name = "alpharen ctl", about = "Administer an ALPHA-REN node", version)]
pub struct Ctl {
    /// State directory of the node (its control socket is run/control.sock).
    #[arg(long, global = true, env = "ALPHAREN_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Control socket path (overrides --state-dir).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// A node elsewhere, by its URL (https://node.example): the commands
    /// that have an API route (`integrator deploy|list|source|versions|
    /// rollback|undeploy|invoke|stats|openapi|packages`) go to its API with the token in
    /// ALPHAREN_TOKEN.
    #[arg(long, global = true)]
    node: Option<String>,
    /// With --node: trust this PEM certificate (the node's self-signed
    /// one) instead of the public CAs.
    #[arg(long, global = true, requires = "node")]
    cacert: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Exit codes: 0 done, 1 the node refused or failed, 2 usage, 3 the node
/// could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(String),
    /// The node answered, but there is nothing to do what was asked on.
    #[error("{0}")]
    Refused(String),
}

impl CtlError {
    fn exit_code(&self) -> i32 {
        match self {
            CtlError::Client(ClientError::Connect { .. }) => 3,
            CtlError::Client(_) | CtlError::Io(_) | CtlError::Refused(_) => 1,
            CtlError::Usage(_) => 2,
        }
    }
}

/// Runs `alpharen ctl ARGS...` (args include the program name); returns the
/// process exit code.
pub fn main(args: impl IntoIterator<Item = String>) -> i32 {
    // Like other CLIs, end quietly when the reader of our output goes away
    // (`ctl logs | head`) instead of panicking on a broken pipe.
    // SAFETY: setting a signal to its default disposition installs no handler.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    let ctl = match Ctl::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(ctl) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", render_error(&e));
            e.exit_code()
        }
    }
}

fn render_error(e: &CtlError) -> String {
    match e {
        CtlError::Client(ClientError::Rpc(rpc)) => format!("{} [{}]", rpc.message, rpc.code),
        other => other.to_string(),
    }
}

fn socket_path(ctl: &Ctl) -> PathBuf {
    if let Some(s) = &ctl.socket {
        return s.clone();
    }
    alpharen_rpc::control_socket(
        ctl.state_dir
            .as_deref()
            .unwrap_or_else(|| std::path::Path::new("/data")),
    )
}

fn run(ctl: Ctl) -> Result<(), CtlError> {
    let author = std::env::var(client::AUTHOR_ENV).ok();
    let transport = match &ctl.node {
        // The ssh door names its user; its users do not get the node to
        // make HTTPS requests for them.
        Some(_) if author.is_some() => {
            return Err(CtlError::Usage(
                "--node is for ctl on your own machine, not in the node's ssh".into(),
            ));
        }
        Some(url) => client::Transport::Remote(remote::Remote::new(url, ctl.cacert.as_deref())?),
        None => client::Transport::Socket(Client::connect(&socket_path(&ctl))?),
    };
    let mut node = client::NodeClient::new(transport, author);
    let out = output::Output { json: ctl.json };
    ctl.command.run(&mut node, &out)
}
