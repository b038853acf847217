//! `system update FILE|-|URL` and `system slots`: install a signed update
//! bundle into the inactive A/B slot, and show both slots. The bundle goes
//! to the supervisor as a raw upload on the control socket (docs/update.md
//! says why), or to `POST /api/v1/system/update` with `--node`, so `ssh
//! admin@node system update - < bundle.aru` works with no file on the
//! node, and a URL is streamed (resuming broken connections,
//! `crate::download`) without being stored. A FILE on the node's own
//! machine, or standard input (a file or a pipe), goes to the supervisor
//! open, for it to read itself (no copy through the socket). The reboot
//! that tries it is `reboot`.

use std::io::IsTerminal;
use std::os::fd::AsFd;

use alpharen_rpc::ClientError;
use alpharen_rpc::system::{self, ScheduleReboot};
use clap::Subcommand;
use serde_json::json;

use crate::CtlError;
use crate::client::NodeClient;
use crate::download::Download;
use crate::output::{Output, table, text, time};

#[derive(Debug, Subcommand)]
pub enum SystemCmd {
    /// Install a signed update bundle (.aru) into the inactive slot and
    /// arm it for one trial at the next reboot. SOURCE is a file, "-" for
    /// standard input (over ssh: `ssh admin@node system update - <
    /// bundle.aru`), or an http:// or https:// URL (public CAs), whose
    /// download resumes where it broke off (HTTP Range, up to 5 tries in
    /// a row).
    Update {
        source: String,
        /// Reboot into the new slot: "now", "never" (then `reboot` does
        /// it), or a local time HH:MM (the node's time zone; cancel with
        /// `reboot --cancel`). Checked before anything is uploaded.
        #[arg(long, default_value = "never", value_parser = parse_when)]
        reboot: When,
    },
    /// The A/B slots: state (good, trial, failed, invalid), version, build,
    /// which one runs.
    Slots,
}

impl SystemCmd {
    pub fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        match self {
            SystemCmd::Slots => slots(client, out),
            SystemCmd::Update { source, reboot } => {
                update(client, out, &source)?;
                reboot.run(client, out)
            }
        }
    }
}

/// When `system update --reboot` reboots into the new slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    Now,
    Never,
    /// A local time `HH:MM`.
    At(String),
}

/// `now`, `never`, `HH:MM` or `at HH:MM`.
fn parse_when(s: &str) -> Result<When, String> {
    match s.trim() {
        "now" => Ok(When::Now),
        "never" => Ok(When::Never),
        t => {
            let t = t.strip_prefix("at ").map_or(t, str::trim);
            system::parse_time_of_day(t)
                .map(|_| When::At(t.to_string()))
                .ok_or_else(|| format!("{s:?} is not now, never or a time of day HH:MM"))
        }
    }
}

impl When {
    fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        match self {
            When::Never => Ok(()),
            When::Now => super::system::stop(client, out, system::REBOOT),
            When::At(at) => schedule(client, out, Some(at)),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct RebootArgs {
    /// Reboot at this local time (HH:MM, the node's time zone), the next
    /// time it comes; replaces an earlier schedule.
    #[arg(long, value_parser = parse_when_at, conflicts_with = "cancel")]
    at: Option<String>,
    /// Cancel the scheduled reboot.
    #[arg(long)]
    cancel: bool,
}

fn parse_when_at(s: &str) -> Result<String, String> {
    match parse_when(s) {
        Ok(When::At(t)) => Ok(t),
        _ => Err(format!("{s:?} is not a time of day HH:MM")),
    }
}

impl RebootArgs {
    pub fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        match (self.at, self.cancel) {
            (None, false) => super::system::stop(client, out, system::REBOOT),
            (at, _) => schedule(client, out, at),
        }
    }
}

/// Schedules a reboot at `at`, or cancels the schedule (`None`).
fn schedule(client: &mut NodeClient, out: &Output, at: Option<String>) -> Result<(), CtlError> {
    let cancel = at.is_none();
    let v = client.call(system::REBOOT_SCHEDULE, ScheduleReboot { at, cancel })?;
    out.show(&v, |v| match v["at"].as_i64() {
        Some(_) => println!("reboot scheduled for {}", time(&v["at"])),
        None => println!("no reboot scheduled"),
    });
    Ok(())
}

fn slots(client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
    let v = client.call(system::SLOTS, json!({}))?;
    let pending = client.call(system::REBOOT_SCHEDULED, json!({}))?;
    out.show(&v, |v| {
        let rows = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let state = match s["tries_left"].as_u64() {
                    Some(n) => format!("{} ({n} tries left)", text(&s["state"])),
                    None => text(&s["state"]),
                };
                vec![
                    text(&s["slot"]),
                    if s["booted"].as_bool() == Some(true) {
                        "*".into()
                    } else {
                        String::new()
                    },
                    state,
                    text(&s["version"]),
                    text(&s["build_id"]),
                    if s["installed_at"].is_null() {
                        "-".into()
                    } else {
                        time(&s["installed_at"])
                    },
                ]
            })
            .collect();
        table(
            &["slot", "booted", "state", "version", "build", "installed"],
            rows,
        );
        if !pending["at"].is_null() {
            println!("reboot scheduled for {}", time(&pending["at"]));
        }
    });
    Ok(())
}

fn update(client: &mut NodeClient, out: &Output, source: &str) -> Result<(), CtlError> {
    let mut last_mib = 0;
    let mut progress = |sent: u64| {
        if !out.json && sent >> 23 != last_mib {
            last_mib = sent >> 23;
            eprintln!("sent {} MiB", sent >> 20);
        }
    };
    let sent = if source == "-" {
        client.upload_file(system::UPDATE_UPLOAD, standard_input()?, &mut progress)
    } else if source.starts_with("http://") || source.starts_with("https://") {
        let mut download = Download::new(
            source,
            Box::new(|at, why| eprintln!("download broke off at byte {at} ({why}); resuming")),
        );
        client.upload(system::UPDATE_UPLOAD, &mut download, &mut progress)
    } else {
        let file = std::fs::File::open(source)
            .map_err(|e| CtlError::Io(format!("cannot read {source}: {e}")))?;
        client.upload_file(system::UPDATE_UPLOAD, file, &mut progress)
    };
    let v = match sent {
        Err(ClientError::Input(e)) => {
            return Err(CtlError::Io(format!("cannot read {source}: {e}")));
        }
        other => other?,
    };
    out.show(&v, |v| {
        println!(
            "installed version {} (build {}) into slot {}: {} bytes verified and written",
            text(&v["version"]),
            text(&v["build_id"]),
            text(&v["slot"]),
            text(&v["bytes"])
        );
        println!(
            "it is armed for one trial: a reboot boots it; it is kept once healthy, else slot {} comes back",
            if v["slot"] == "a" { "b" } else { "a" }
        );
    });
    Ok(())
}

/// Standard input, to be passed on as it is (a file, or a pipe as over
/// ssh); a terminal is refused, since a bundle cannot be typed.
fn standard_input() -> Result<std::fs::File, CtlError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(CtlError::Usage(
            "standard input is a terminal: redirect or pipe the bundle into it (system update - < bundle.aru)".into(),
        ));
    }
    stdin
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .map_err(|e| CtlError::Io(format!("cannot read standard input: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reboot_when_reads_now_never_and_a_time() {
        assert_eq!(parse_when("now"), Ok(When::Now));
        assert_eq!(parse_when("never"), Ok(When::Never));
        assert_eq!(parse_when("03:30"), Ok(When::At("03:30".into())));
        assert_eq!(parse_when("at 3:30"), Ok(When::At("3:30".into())));
        assert!(parse_when("25:00").is_err());
        assert!(parse_when("later").is_err());
        assert!(parse_when_at("now").is_err());
    }
}
