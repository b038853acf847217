//! Runs the mail service alone, without the supervisor, for the e2e tests
//! and benchmarks: the same library entry points `alpharen serve mail` and
//! `alpharen sendmail` call, plus config and control-socket helpers.
//!
//! mail-dev serve --state-dir DIR [--dev]
//! mail-dev sendmail [sendmail args]      (or run it as `sendmail`)
//! mail-dev apply-config --state-dir DIR FILE.toml
//! mail-dev set-secret --state-dir DIR NAME VALUE
//! mail-dev add-user --state-dir DIR NAME PASSWORD
//! mail-dev rpc --state-dir DIR METHOD [JSON-PARAMS]

use std::path::PathBuf;
use std::process::ExitCode;

fn state_dir(args: &mut Vec<String>) -> Result<PathBuf, String> {
    let i = args
        .iter()
        .position(|a| a == "--state-dir")
        .ok_or("--state-dir DIR is required")?;
    args.remove(i);
    if i >= args.len() {
        return Err("--state-dir needs a value".into());
    }
    Ok(PathBuf::from(args.remove(i)))
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().collect();
    let prog = argv.remove(0);
    if prog.rsplit('/').next() == Some("sendmail") {
        return ExitCode::from(alpharen_mail::sendmail_main(&argv) as u8);
    }
    if argv.first().map(String::as_str) == Some("sendmail") {
        return ExitCode::from(alpharen_mail::sendmail_main(&argv[1..]) as u8);
    }
    match run(argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mail-dev: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(mut args: Vec<String>) -> Result<(), String> {
    let cmd = if args.is_empty() {
        String::new()
    } else {
        args.remove(0)
    };
    match cmd.as_str() {
        "serve" => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            let dir = state_dir(&mut args)?;
            let dev = args.iter().any(|a| a == "--dev");
            alpharen_mail::serve(&dir, dev).map_err(|e| e.to_string())
        }
        "apply-config" => {
            let dir = state_dir(&mut args)?;
            let file = args.first().ok_or("config file missing")?;
            let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
            let cfg = alpharen_store::Config::from_toml(&text).map_err(|p| {
                p.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
            let mut store = alpharen_store::Store::open(&dir).map_err(|e| e.to_string())?;
            store
                .apply(&cfg, "mail-dev", "test config")
                .map_err(|e| e.to_string())?;
            Ok(())
        }
        "set-secret" => {
            let dir = state_dir(&mut args)?;
            let (Some(name), Some(value)) = (args.first(), args.get(1)) else {
                return Err("set-secret NAME VALUE".into());
            };
            let mut store = alpharen_store::Store::open(&dir).map_err(|e| e.to_string())?;
            store.set_secret(name, value).map_err(|e| e.to_string())
        }
        "add-user" => {
            let dir = state_dir(&mut args)?;
            let (Some(name), Some(password)) = (args.first(), args.get(1)) else {
                return Err("add-user NAME PASSWORD".into());
            };
            let mut store = alpharen_store::Store::open(&dir).map_err(|e| e.to_string())?;
            store
                .add_user(name, password, alpharen_store::Role::Viewer, "mail-dev")
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        "rpc" => {
            let dir = state_dir(&mut args)?;
            let method = args.first().ok_or("method missing")?;
            let params: serde_json::Value = match args.get(1) {
                Some(p) => serde_json::from_str(p).map_err(|e| format!("params: {e}"))?,
                None => serde_json::Value::Null,
            };
            let mut c = alpharen_rpc::Client::connect(&dir.join("run/mail.sock"))
                .map_err(|e| e.to_string())?;
            let v = c.call(method, params).map_err(|e| e.to_string())?;
            println!("{v}");
            Ok(())
        }
        _ => Err("usage: mail-dev serve|sendmail|apply-config|set-secret|add-user|rpc ...".into()),
    }
}
