//! `alpharen`: one multi-call binary. This file only picks what to run, from
//! argv[0] (`init`, `sendmail`) or the first argument; every subsystem lives in its own
//! crate.

mod bundle;

use std::path::PathBuf;

use alpharen_supervisor::init::{self, InitOptions};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

/// Where a node keeps its state (the data partition).
const NODE_STATE_DIR: &str = "/data";

#[derive(Parser)]
#[command(name = "alpharen", version, about = "ALPHA-REN node firmware")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run as PID 1 (chosen automatically when pid is 1 or argv[0] is `init`).
    Init {
        #[arg(long, default_value = NODE_STATE_DIR)]
        state_dir: PathBuf,
        #[arg(long)]
        dev: bool,
        /// Inside a container or PID namespace: no mounts, no reboot(2).
        #[arg(long)]
        container: bool,
    },
    /// The supervisor on a node (started by init).
    Supervise {
        #[arg(long, default_value = NODE_STATE_DIR)]
        state_dir: PathBuf,
        #[arg(long)]
        dev: bool,
        #[arg(long, hide = true)]
        under_init: bool,
        #[arg(long, hide = true)]
        set_hostname: bool,
        /// TOML file that seeds the first revision of an empty state dir.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Supervisor and services in the foreground, for development and tests.
    Run {
        #[arg(long)]
        state_dir: PathBuf,
        /// Loopback dev ports; leave the host's network alone.
        #[arg(long)]
        dev: bool,
        /// TOML file that seeds the first revision of an empty state dir.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run one built-in service (the supervisor does this).
    Serve {
        name: String,
        #[arg(long, default_value = NODE_STATE_DIR)]
        state_dir: PathBuf,
        #[arg(long)]
        dev: bool,
    },
    /// A reaction engine agent on a watched or managed host (docs/reaction.md).
    Agent(alpharen_reaction::AgentArgs),
    /// Queue a message like sendmail(8): `-t`, `-f`, `-F`, `-i`, recipients;
    /// the message on stdin (also run as `sendmail`).
    #[command(disable_help_flag = true)]
    Sendmail {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Make or check a signed update bundle (images/bundle.sh, docs/update.md).
    Bundle {
        #[command(subcommand)]
        cmd: bundle::BundleCmd,
    },
    /// Administer the node over its control socket (see `alpharen ctl --help`).
    #[command(disable_help_flag = true)]
    Ctl {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// hickory-server logs every DNS query at info: two lines per packet would
/// flood the dpx log (and cost most of its throughput), so only its
/// warnings are kept unless ALPHAREN_LOG says otherwise. Its catalog also
/// warns "unexpected lookup skip" for every answer of a zone without
/// DNSSEC (hickory 0.26 built with TSIG support), so it gets errors only.
const DEFAULT_LOG: &str = "info,hickory_server=warn,hickory_server::zone_handler::catalog=error";

fn logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ALPHAREN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .try_init();
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let argv0 = args
        .first()
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or("alpharen");
    // The kernel starts us as /sbin/init with its own arguments (such as
    // "single"); only an explicit `alpharen init ...` is parsed.
    let explicit = args.get(1).is_some_and(|a| a == "init");
    if argv0 == "init" || (std::process::id() == 1 && !explicit) {
        return init::run(InitOptions {
            state_dir: PathBuf::from(NODE_STATE_DIR),
            dev: false,
            container: false,
        })
        .context("init failed");
    }
    if argv0 == "sendmail" {
        std::process::exit(alpharen_mail::sendmail_main(&args[1..]));
    }
    let cli = Cli::parse();
    match cli.command {
        Cmd::Bundle { cmd } => bundle::run(cmd),
        Cmd::Ctl { args } => {
            let code = alpharen_ctl::main(std::iter::once("alpharen ctl".to_string()).chain(args));
            std::process::exit(code);
        }
        Cmd::Init {
            state_dir,
            dev,
            container,
        } => init::run(InitOptions {
            state_dir,
            dev,
            container,
        })
        .context("init failed"),
        Cmd::Supervise {
            state_dir,
            dev,
            under_init,
            set_hostname,
            config,
        } => supervise(state_dir, dev, config, under_init, set_hostname),
        Cmd::Run {
            state_dir,
            dev,
            config,
        } => supervise(state_dir, dev, config, false, false),
        Cmd::Agent(args) => {
            logging();
            alpharen_reaction::run_agent(args)
        }
        Cmd::Sendmail { args } => std::process::exit(alpharen_mail::sendmail_main(&args)),
        Cmd::Serve {
            name,
            state_dir,
            dev,
        } => {
            logging();
            match name.as_str() {
                "net" => alpharen_net::serve(&state_dir, dev).context("the net service failed"),
                "mail" => alpharen_mail::serve(&state_dir, dev).context("mail service"),
                "integrator" => alpharen_integrator::serve(&state_dir, dev)
                    .context("the integrator stopped with an error"),
                "web" => alpharen_web::serve(&state_dir, dev).context("web service"),
                "ssh" => alpharen_ssh::serve(&state_dir, dev).context("ssh service"),
                "vpn" => alpharen_vpn::serve(&state_dir, dev).context("vpn service"),
                "dpx" => alpharen_dpx::serve(&state_dir, dev).context("dpx service"),
                "pgha" => alpharen_pgha::serve(&state_dir, dev).context("pgha service"),
                "logfwd" => alpharen_logfwd::serve(&state_dir, dev).context("logfwd service"),
                "cluster" => alpharen_cluster::serve(&state_dir, dev).context("cluster service"),
                "reaction" => alpharen_reaction::serve(&state_dir, dev).context("reaction service"),
                _ => bail!("there is no built-in service {name:?} in this firmware"),
            }
        }
    }
}

fn supervise(
    state_dir: PathBuf,
    dev: bool,
    config: Option<PathBuf>,
    under_init: bool,
    set_hostname: bool,
) -> Result<()> {
    logging();
    alpharen_supervisor::run(alpharen_supervisor::Options {
        state_dir,
        dev,
        config,
        under_init,
        set_hostname,
    })
    .context("the supervisor stopped with an error")
}
