//! status, services, restart, logs, reboot, poweroff.

use crate::client::NodeClient;
use alpharen_rpc::{logs, services};
use clap::Args;
use serde_json::{Value, json};

use crate::CtlError;
use crate::output::{Output, duration, table, text, time};

fn service_rows(list: &Value) -> Vec<Vec<String>> {
    let now = alpharen_store::now_unix();
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    vec![
                        text(&s["name"]),
                        text(&s["state"]),
                        text(&s["pid"]),
                        text(&s["restarts"]),
                        s["since"]
                            .as_i64()
                            .map_or("-".into(), |t| format!("{} ago", duration(now - t))),
                        text(&s["last_exit"]),
                        s["rss_kib"]
                            .as_u64()
                            .map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
                    ]
                })
                .collect()
        })
        .unwrap_or_default()
}

const SERVICE_HEADER: [&str; 7] = [
    "service",
    "state",
    "pid",
    "restarts",
    "since",
    "last exit",
    "rss",
];

pub fn status(client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
    let v = client.call(services::STATUS, json!({}))?;
    out.show(&v, |v| {
        println!("node      {}", text(&v["hostname"]));
        println!("version   {}", text(&v["version"]));
        if v["system"].is_object() {
            println!(
                "system    {} (build {})",
                text(&v["system"]["version"]),
                text(&v["system"]["build_id"])
            );
        }
        println!("uptime    {}", duration(v["uptime"].as_i64().unwrap_or(0)));
        println!("revision  {}", text(&v["revision"]));
        if let Some(m) = v["memory"].as_object() {
            let mib = |k: &Value| k.as_u64().unwrap_or(0) as f64 / 1024.0;
            println!(
                "memory    {:.1} MiB RSS, {:.1} MiB PSS in {} alpharen processes",
                mib(&m["rss_kib"]),
                mib(&m["pss_kib"]),
                text(&m["processes"])
            );
        }
        if v["dev"].as_bool() == Some(true) {
            println!("mode      development ({})", text(&v["state_dir"]));
        }
        if v["setup_required"].as_bool() == Some(true) {
            println!("setup     required: finish it in the web console with the setup code");
        }
        if let Some(p) = v["pending"].as_object() {
            println!(
                "PENDING   revision {} reverts to {} at {} unless you run `alpharen ctl config confirm`",
                text(&p["revision"]),
                text(&p["fallback"]),
                time(&p["deadline"])
            );
        }
        println!();
        table(&SERVICE_HEADER, service_rows(&v["services"]));
    });
    Ok(())
}

pub fn services(client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
    let v = client.call(services::LIST, json!({}))?;
    out.show(&v, |v| table(&SERVICE_HEADER, service_rows(v)));
    Ok(())
}

pub fn restart(client: &mut NodeClient, out: &Output, name: &str) -> Result<(), CtlError> {
    let v = client.call(
        services::RESTART,
        services::Restart {
            name: name.to_string(),
            wait: true,
        },
    )?;
    out.show(&v, |v| {
        let pid = v.get("pid").and_then(|p| p.as_u64()).unwrap_or_default();
        match v.get("serving") {
            Some(_) => println!("{name} restarted (pid {pid}) and serving"),
            None => println!("{name} restarted (pid {pid})"),
        }
    });
    Ok(())
}

pub fn stop(client: &mut NodeClient, out: &Output, method: &str) -> Result<(), CtlError> {
    let v = client.call(method, json!({}))?;
    out.show(&v, |_| println!("stopping"));
    Ok(())
}

#[derive(Debug, Args)]
pub struct Logs {
    /// Only this service (all services when omitted).
    service: Option<String>,
    /// Keep printing new lines until interrupted.
    #[arg(short, long)]
    follow: bool,
    /// How many past lines to show.
    #[arg(short = 'n', long, default_value_t = 50)]
    lines: usize,
}

fn print_line(out: &Output, l: &Value) {
    if out.json {
        println!("{l}");
    } else {
        let at = l["at"]
            .as_i64()
            .map_or("-".into(), |ms| time(&Value::from(ms / 1000)));
        println!("{} {:<10} {}", at, text(&l["service"]), text(&l["text"]));
    }
}

impl Logs {
    pub fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        let v = client.call(
            logs::READ,
            logs::Logs {
                service: self.service,
                lines: self.lines,
                follow: self.follow,
            },
        )?;
        for l in v.as_array().into_iter().flatten() {
            print_line(out, l);
        }
        if self.follow {
            while let Some(l) = client.next_item()? {
                print_line(out, &l);
            }
        }
        Ok(())
    }
}
