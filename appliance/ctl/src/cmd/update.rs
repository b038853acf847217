//! `system update FILE|-|URL` and `system slots`: install a signed update
//! bundle into the inactive A/B slot, and show both slots. The bundle goes
//! to the supervisor as a raw upload on the control socket (docs/update.md
//! says why), or to `POST /api/v1/system/update` with `--node`, so `ssh admin@node system update - < bundle.aru` works with
//! no file on the node, and a URL is streamed (resuming broken
//! connections, `crate::download`) without being stored; the reboot that
//! tries it is `reboot`.

use std::io::Read;

use alpharen_rpc::ClientError;
use alpharen_rpc::system;
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
    Update { source: String },
    /// The A/B slots: state (good, trial, failed, invalid), version, build,
    /// which one runs.
    Slots,
}

impl SystemCmd {
    pub fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        match self {
            SystemCmd::Slots => slots(client, out),
            SystemCmd::Update { source } => update(client, out, &source),
        }
    }
}

fn slots(client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
    let v = client.call(system::SLOTS, json!({}))?;
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
    });
    Ok(())
}

fn update(client: &mut NodeClient, out: &Output, source: &str) -> Result<(), CtlError> {
    let mut input: Box<dyn Read> = if source == "-" {
        Box::new(std::io::stdin().lock())
    } else if source.starts_with("http://") || source.starts_with("https://") {
        Box::new(Download::new(
            source,
            Box::new(|at, why| eprintln!("download broke off at byte {at} ({why}); resuming")),
        ))
    } else {
        Box::new(
            std::fs::File::open(source)
                .map_err(|e| CtlError::Io(format!("cannot read {source}: {e}")))?,
        )
    };
    let mut last_mib = 0;
    let mut progress = |sent: u64| {
        if !out.json && sent >> 23 != last_mib {
            last_mib = sent >> 23;
            eprintln!("sent {} MiB", sent >> 20);
        }
    };
    let v = match client.upload(system::UPDATE_UPLOAD, &mut input, &mut progress) {
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
            "it is armed for one trial: `reboot` boots it; it is kept once healthy, else slot {} comes back",
            if v["slot"] == "a" { "b" } else { "a" }
        );
    });
    Ok(())
}
