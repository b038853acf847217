//! `alpharen agent`: the same binary on a watched or managed host. The
//! reader follows the files the engine names (asked again every
//! `--config-interval` seconds, so a change needs no restart) and reports
//! matching lines; the executor long-polls for commands, runs each with
//! `/bin/sh -c` under its timeout and sends back the exit code and output.
//! Every call is signed with the agent's secret (and with `--encrypt` its
//! body sealed, `seal`); the engine's certificate is pinned
//! (`--engine-cert`) or checked against the public CAs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio_rustls::TlsConnector;

use crate::reader::{Follower, Position};

/// Most output bytes kept of a command (stdout, then stderr).
const MAX_OUTPUT: usize = 64 * 1024;

#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// The engine's agent API, `https://HOST:PORT` (`[reaction] port`).
    #[arg(long)]
    pub engine: String,
    /// This agent's name in `[[reaction.agents]]`.
    #[arg(long)]
    pub name: String,
    /// File holding the agent's secret (the node's `reaction.agent.NAME`).
    #[arg(long)]
    pub secret_file: PathBuf,
    /// PEM certificate the engine must present (the node's tls/cert.pem);
    /// left out, the engine's certificate is checked against the public CAs.
    #[arg(long)]
    pub engine_cert: Option<PathBuf>,
    /// Watch the files the engine names and report matching lines.
    #[arg(long)]
    pub reader: bool,
    /// Run the commands the engine hands to this host.
    #[arg(long)]
    pub executor: bool,
    /// Where the reader keeps its file offsets.
    #[arg(long, default_value = "/var/lib/alpharen-agent")]
    pub state_dir: PathBuf,
    /// Milliseconds between two looks at the watched files.
    #[arg(long, default_value_t = 200)]
    pub poll_ms: u64,
    /// Seconds between two fetches of the watch list.
    #[arg(long, default_value_t = 5)]
    pub config_interval: u64,
    /// Encrypt every message body (AES-256-GCM, key derived from the
    /// secret) on top of TLS, and refuse plaintext answers; the agent's
    /// `encrypt = true` in `[reaction]` must match.
    #[arg(long)]
    pub encrypt: bool,
}

struct Client {
    host: String,
    port: u16,
    name: String,
    key: String,
    tls: TlsConnector,
    seal: Option<crate::seal::Key>,
}

/// Accepts exactly the pinned certificate, with a valid handshake signature.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the engine's certificate is not the pinned one (--engine-cert)".into(),
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `https://HOST:PORT` → (host, port).
fn parse_engine(url: &str) -> Result<(String, u16)> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| anyhow!("--engine {url:?} must start with https://"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("--engine {url:?} needs a port (https://HOST:PORT)"))?;
    let port = port
        .parse()
        .map_err(|_| anyhow!("--engine {url:?}: {port:?} is not a port"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

impl Client {
    fn new(a: &AgentArgs) -> Result<Client> {
        let (host, port) = parse_engine(&a.engine)?;
        let key = std::fs::read_to_string(&a.secret_file)
            .with_context(|| format!("reading --secret-file {}", a.secret_file.display()))?
            .trim()
            .to_string();
        if key.is_empty() {
            bail!("--secret-file {} is empty", a.secret_file.display());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let config = match &a.engine_cert {
            Some(p) => {
                let cert = CertificateDer::from_pem_file(p)
                    .with_context(|| format!("reading --engine-cert {}", p.display()))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Pinned { cert, provider }))
                    .with_no_client_auth()
            }
            None => {
                let roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        Ok(Client {
            host,
            port,
            seal: a.encrypt.then(|| crate::seal::Key::derive(&key, &a.name)),
            name: a.name.clone(),
            key,
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// One signed call; (status, JSON body or Null).
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<(u16, Value)> {
        let mut body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        if let Some(k) = &self.seal
            && !body.is_empty()
        {
            body = k.seal(&crate::seal::request_aad(method, path), &body)?;
        }
        let run = async {
            let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await?;
            let name = ServerName::try_from(self.host.clone())?;
            let tls = self.tls.connect(name, tcp).await?;
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
            tokio::spawn(conn);
            let mut req = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header("host", format!("{}:{}", self.host, self.port))
                .header(
                    "user-agent",
                    concat!("alpharen-agent/", env!("CARGO_PKG_VERSION")),
                )
                .header("content-type", "application/json");
            for (k, v) in alpharen_httpsig::signed_headers(
                &self.name,
                &self.key,
                method,
                path,
                &body,
                SystemTime::now(),
            ) {
                req = req.header(k, v);
            }
            let resp = send
                .send_request(req.body(Full::new(Bytes::from(body)))?)
                .await?;
            let status = resp.status().as_u16();
            let mut bytes = resp.into_body().collect().await?.to_bytes();
            match &self.seal {
                // Only a refusal before the engine knows the agent (401)
                // or reads its body (413) comes back in plaintext.
                Some(k) if !bytes.is_empty() && status != 401 && status != 413 => {
                    bytes = k
                        .open(&crate::seal::answer_aad(method, path), &bytes)
                        .map_err(|e| anyhow!("the engine's answer: {e}"))?
                        .into();
                }
                None if crate::seal::is_sealed(&bytes) => {
                    bail!("the engine's answer is encrypted: run the agent with --encrypt")
                }
                _ => {}
            }
            let v = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            };
            anyhow::Ok((status, v))
        };
        tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| anyhow!("no answer within {timeout:?}"))?
    }

    /// A call that must succeed: errors name the status and the engine's reason.
    async fn ok(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value> {
        let (status, v) = self.call(method, path, body, timeout).await?;
        if status / 100 != 2 {
            bail!(
                "{method} {path}: {status} {}",
                v["error"].as_str().unwrap_or("")
            );
        }
        Ok(v)
    }
}

/// `alpharen agent`.
pub fn run_agent(args: AgentArgs) -> Result<()> {
    if !args.reader && !args.executor {
        bail!("give --reader, --executor or both");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client = Arc::new(Client::new(&args)?);
        tracing::info!(engine = %args.engine, name = %args.name, reader = args.reader, executor = args.executor, "agent started");
        let mut tasks = Vec::new();
        if args.executor {
            tasks.push(tokio::spawn(executor(client.clone())));
        }
        if args.reader {
            std::fs::create_dir_all(&args.state_dir).with_context(|| format!("creating --state-dir {}", args.state_dir.display()))?;
            tasks.push(tokio::spawn(reader(client.clone(), args.state_dir.clone(), args.poll_ms, args.config_interval)));
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("agent stopped");
        Ok(())
    })
}

/// Waits before the next try after `failures` failed calls in a row.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(200u64 << failures.min(5))
}

#[derive(Deserialize)]
struct Lease {
    run: i64,
    seq: i64,
    token: String,
    command: String,
    timeout: u64,
}

async fn executor(client: Arc<Client>) {
    let mut failures = 0u32;
    loop {
        let got = client
            .call(
                "POST",
                "/agent/v1/lease",
                Some(&json!({ "wait_ms": 25_000 })),
                Duration::from_secs(40),
            )
            .await;
        let lease: Lease = match got {
            Ok((204, _)) => {
                failures = 0;
                continue;
            }
            Ok((200, v)) => match serde_json::from_value(v) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "the engine's lease answer is not understood");
                    tokio::time::sleep(backoff(5)).await;
                    continue;
                }
            },
            Ok((status, v)) => {
                failures += 1;
                tracing::warn!(status, error = %v["error"], "lease refused");
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(error = %e, "cannot reach the engine; retrying");
                }
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
        };
        failures = 0;
        tracing::info!(run = lease.run, seq = lease.seq, command = %lease.command, "running command");
        let (exit_code, output, timed_out) =
            run_command(&lease.command, Duration::from_secs(lease.timeout)).await;
        tracing::info!(
            run = lease.run,
            seq = lease.seq,
            exit_code,
            timed_out,
            "command finished"
        );
        let body = json!({ "run": lease.run, "seq": lease.seq, "token": lease.token, "exit_code": exit_code, "output": output, "timed_out": timed_out });
        // Sent until the engine has it (or says the lease is gone).
        let mut tries = 0u32;
        loop {
            match client
                .call(
                    "POST",
                    "/agent/v1/result",
                    Some(&body),
                    Duration::from_secs(30),
                )
                .await
            {
                Ok((200, _)) => break,
                Ok((status @ (404 | 409), v)) => {
                    tracing::warn!(
                        run = lease.run,
                        seq = lease.seq,
                        status,
                        error = %v["error"],
                        "result not taken: the lease is no longer ours or the step is gone"
                    );
                    break;
                }
                Ok((status, v)) => {
                    tracing::warn!(status, error = %v["error"], "result refused; retrying")
                }
                Err(e) => tracing::warn!(error = %e, "cannot send the result; retrying"),
            }
            tries += 1;
            tokio::time::sleep(backoff(tries)).await;
        }
    }
}

/// Runs `/bin/sh -c COMMAND`: exit code (-1 when killed or timed out),
/// stdout then stderr (at most MAX_OUTPUT bytes), and whether it timed out.
async fn run_command(command: &str, timeout: Duration) -> (i32, String, bool) {
    let child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (-1, format!("cannot start /bin/sh: {e}"), false),
    };
    let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
        return (-1, "no pipes to the command".into(), false);
    };
    let work = async {
        let mut o = Vec::new();
        let mut e = Vec::new();
        let (_, _, status) = tokio::join!(
            out.read_to_end(&mut o),
            err.read_to_end(&mut e),
            child.wait()
        );
        (o, e, status)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok((mut o, e, status)) => {
            o.extend_from_slice(&e);
            o.truncate(MAX_OUTPUT);
            let code = status.ok().and_then(|s| s.code()).unwrap_or(-1);
            (code, String::from_utf8_lossy(&o).into_owned(), false)
        }
        Err(_) => {
            if let Some(pid) = child.id() {
                // The whole process group: the shell and what it started.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            (-1, format!("timed out after {} s", timeout.as_secs()), true)
        }
    }
}

/// What the reader keeps between runs.
#[derive(Default, Serialize, Deserialize)]
struct ReaderState {
    /// Made once per state file: the engine counts `seq` per epoch.
    epoch: String,
    next_seq: i64,
    files: HashMap<String, Position>,
}

fn load_state(dir: &Path) -> ReaderState {
    let mut s: ReaderState = std::fs::read(dir.join("reader.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if s.epoch.is_empty() {
        s.epoch = format!("{:016x}", rand::random::<u64>());
        s.next_seq = 1;
    }
    s
}

/// Written to a temporary file, fsynced and renamed over the old one.
fn save_state(dir: &Path, s: &ReaderState) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join("reader.json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(s).unwrap_or_default())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join("reader.json"))?;
    std::fs::File::open(dir)?.sync_all()
}

#[derive(Deserialize)]
struct WatchConf {
    watch: Vec<WatchEntry>,
}

#[derive(Deserialize)]
struct WatchEntry {
    path: String,
    patterns: Vec<PatternEntry>,
}

#[derive(Deserialize)]
struct PatternEntry {
    name: String,
    regex: String,
}

async fn reader(client: Arc<Client>, dir: PathBuf, poll_ms: u64, config_interval: u64) {
    let mut state = load_state(&dir);
    let mut followers: HashMap<String, (Follower, Vec<(String, regex::Regex)>)> = HashMap::new();
    let mut next_config = tokio::time::Instant::now();
    let mut failures = 0u32;
    loop {
        if tokio::time::Instant::now() >= next_config {
            match client
                .ok("GET", "/agent/v1/config", None, Duration::from_secs(30))
                .await
                .and_then(|v| Ok(serde_json::from_value::<WatchConf>(v)?))
            {
                Ok(conf) => {
                    let mut kept = HashMap::new();
                    for w in conf.watch {
                        let pats: Vec<_> = w
                            .patterns
                            .into_iter()
                            .filter_map(|p| regex::Regex::new(&p.regex).ok().map(|r| (p.name, r)))
                            .collect();
                        let f = match followers.remove(&w.path) {
                            Some((f, _)) => f,
                            None => {
                                tracing::info!(path = %w.path, "watching");
                                Follower::new(w.path.clone(), state.files.get(&w.path).copied())
                            }
                        };
                        kept.insert(w.path, (f, pats));
                    }
                    for p in followers.keys() {
                        tracing::info!(path = %p, "no longer watching");
                    }
                    followers = kept;
                    next_config =
                        tokio::time::Instant::now() + Duration::from_secs(config_interval);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot fetch the watch list; retrying");
                    next_config = tokio::time::Instant::now() + backoff(3);
                }
            }
        }
        let mut events = Vec::new();
        let mut seq = state.next_seq;
        for (path, (f, pats)) in followers.iter_mut() {
            let lines = match f.poll() {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(path, error = %e, "cannot read");
                    continue;
                }
            };
            for line in lines {
                for (name, re) in pats.iter() {
                    if re.is_match(&line) {
                        events.push(
                            json!({ "seq": seq, "path": path, "pattern": name, "line": line }),
                        );
                        seq += 1;
                    }
                }
            }
        }
        let sent = if events.is_empty() {
            Ok(())
        } else {
            let body = json!({ "epoch": state.epoch, "events": events });
            client.ok("POST", "/agent/v1/events", Some(&body), Duration::from_secs(30)).await.map(|v| {
                tracing::info!(sent = events.len(), accepted = %v["accepted"], "events reported");
            })
        };
        match sent {
            Ok(()) => {
                failures = 0;
                let mut changed = state.next_seq != seq;
                state.next_seq = seq;
                for (path, (f, _)) in followers.iter_mut() {
                    f.commit();
                    if let Some(p) = f.pos
                        && state.files.get(path) != Some(&p)
                    {
                        state.files.insert(path.clone(), p);
                        changed = true;
                    }
                }
                if changed && let Err(e) = save_state(&dir, &state) {
                    tracing::error!(error = %e, dir = %dir.display(), "cannot keep the reader's offsets");
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "cannot report events; they are sent again");
                tokio::time::sleep(backoff(failures)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(poll_ms)).await;
    }
}
