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
//! mail-dev supervisor --state-dir DIR (stands in for the supervisor on
//!                                     control.sock: `services.view` and
//!                                     `users.authenticate`, without its limiter)

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

/// The two methods the mail service asks the supervisor, answered from
/// the store as the supervisor does (the view with the `mail.` secrets;
/// the login check minus the limiter), so the service runs alone.
struct Supervisor(PathBuf);

impl alpharen_rpc::Handler for Supervisor {
    async fn call(
        &self,
        call: alpharen_rpc::Call,
    ) -> Result<alpharen_rpc::Reply, alpharen_rpc::RpcError> {
        use alpharen_rpc::RpcError;
        let internal =
            |e: alpharen_store::StoreError| RpcError::new("internal_error", e.to_string());
        let store = alpharen_store::Store::open(&self.0).map_err(internal)?;
        if call.method == alpharen_rpc::view::VIEW {
            let mut view = alpharen_store::View {
                config: store.current_config().map_err(internal)?,
                ..Default::default()
            };
            for name in store.secret_names().map_err(internal)? {
                if let (true, Some(v)) = (
                    name.starts_with("mail."),
                    store.secret(&name).map_err(internal)?,
                ) {
                    view.secrets.insert(name, v);
                }
            }
            return serde_json::to_value(view)
                .map(Into::into)
                .map_err(|e| RpcError::new("internal_error", e.to_string()));
        }
        if call.method != alpharen_rpc::auth::METHOD {
            return Err(RpcError::new("method_not_found", call.method));
        }
        let p: alpharen_rpc::auth::AuthParams = call.params()?;
        let user = store
            .verify_password(&p.username, &p.password)
            .map_err(internal)?
            .ok_or_else(|| RpcError::new("bad_credentials", "wrong user name or password"))?;
        Ok(serde_json::json!({"user": user.name, "role": user.role.as_str()}).into())
    }
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
        "supervisor" => {
            let dir = state_dir(&mut args)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let listener = alpharen_rpc::bind(&dir.join("run/control.sock"))
                    .map_err(|e| format!("control socket: {e}"))?;
                alpharen_rpc::serve(listener, std::sync::Arc::new(Supervisor(dir))).await;
                Ok(())
            })
        }
        _ => Err(
            "usage: mail-dev serve|sendmail|apply-config|set-secret|add-user|rpc|supervisor ..."
                .into(),
        ),
    }
}
