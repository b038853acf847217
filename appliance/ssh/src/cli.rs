//! The CLI behind a channel: a command given to `ssh` runs as
//! `alpharen ctl ARGS` with its output streamed back; the prompt's lines
//! run the same way one after another.

use std::process::Stdio;
use std::sync::Arc;

use russh::server::Handle;
use russh::{ChannelId, CryptoVec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::line::{self, Action, split_command};
use crate::{Shared, redact};

const HELP: &str = "ALPHA-REN node maintenance shell. Commands are those of `alpharen ctl`:
  status                      node, version, uptime, services
  services | restart NAME     services and restarting one
  config show|history|diff A B|set PATH VALUE|rollback N|confirm
  logs [SERVICE]              recent log lines
  user list|add|passwd|del    node users
  backup create -             a backup on stdout (use: ssh node backup create - > file)
  system slots                the A/B slots: state, version, build
  system update -             install an update bundle from stdin (ssh node system update - < file.aru)
  system update URL           install one the node downloads (http/https; resumes broken downloads)
  reboot                      reboot (tries a freshly installed slot)
  help [COMMAND]              this text, or a command's options (`help config`)
  exit                        leave
";

/// Runs the prompt's lines in order, then closes the channel on `exit`.
pub(crate) async fn shell_worker(
    shared: Arc<Shared>,
    handle: Handle,
    channel: ChannelId,
    user: String,
    mut rx: mpsc::Receiver<Action>,
) {
    let say = |text: String| {
        let handle = handle.clone();
        async move {
            let _ = handle.data(channel, CryptoVec::from(text)).await;
        }
    };
    while let Some(action) = rx.recv().await {
        let line = match action {
            Action::Run(line) => line,
            Action::Exit | Action::Echo(_) => break,
        };
        let args = match split_command(&line) {
            Ok(a) if a.is_empty() => {
                say(line::PROMPT.to_string()).await;
                continue;
            }
            Ok(a) => a,
            Err(e) => {
                say(format!("{e}\r\n{}", line::PROMPT)).await;
                continue;
            }
        };
        if matches!(args[0].as_str(), "exit" | "quit" | "logout") {
            break;
        }
        if args[0] == "help" && args.len() == 1 {
            say(format!("{}{}", HELP.replace('\n', "\r\n"), line::PROMPT)).await;
            continue;
        }
        let args = if args[0] == "help" {
            args[1..]
                .iter()
                .cloned()
                .chain(["--help".to_string()])
                .collect()
        } else {
            args
        };
        tracing::info!(user = %user, command = %redact::loggable(&args), "ssh shell command");
        let code = run(&shared, &handle, channel, &user, args, None, true).await;
        if code == 0 {
            say(line::PROMPT.to_string()).await;
        } else {
            say(format!("(exit {code})\r\n{}", line::PROMPT)).await;
        }
    }
    say("bye\r\n".to_string()).await;
    let _ = handle.exit_status_request(channel, 0).await;
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
}

pub(crate) async fn finish(handle: Handle, channel: ChannelId, stderr: Vec<u8>, code: u32) {
    let _ = handle
        .extended_data(channel, 1, CryptoVec::from(stderr))
        .await;
    let _ = handle.exit_status_request(channel, code).await;
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
}

/// Runs `alpharen ctl --state-dir DIR ARGS...` and streams it into the
/// channel; returns its exit code. On a pty, `\n` becomes `\r\n`. The
/// logged-in user goes in `ALPHAREN_AUTHOR`, so changes are recorded under
/// that name (the arguments are the ssh user's; the environment is not).
/// It runs with no capabilities.
pub(crate) async fn run(
    shared: &Shared,
    handle: &Handle,
    channel: ChannelId,
    user: &str,
    args: Vec<String>,
    stdin: Option<mpsc::Receiver<Vec<u8>>>,
    pty: bool,
) -> u32 {
    let mut cmd = tokio::process::Command::new(&shared.exe);
    cmd.arg("ctl")
        .arg("--state-dir")
        .arg(&shared.state_dir)
        .args(&args)
        .env("ALPHAREN_AUTHOR", user)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe and touches only the child. The
    // CLI only talks to the control socket: it drops the ambient
    // capabilities the ssh service keeps for port 22.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            ) == -1
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = handle
                .extended_data(
                    channel,
                    1,
                    CryptoVec::from(format!("cannot run the CLI: {e}\n")),
                )
                .await;
            return 127;
        }
    };
    if let (Some(mut rx), Some(mut w)) = (stdin, child.stdin.take()) {
        tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if w.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
    }
    let pipe = |mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send>, ext: Option<u32>| {
        let handle = handle.clone();
        async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let n = match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let bytes = if pty {
                    crlf(&buf[..n])
                } else {
                    buf[..n].to_vec()
                };
                let sent = match ext {
                    Some(e) => {
                        handle
                            .extended_data(channel, e, CryptoVec::from(bytes))
                            .await
                    }
                    None => handle.data(channel, CryptoVec::from(bytes)).await,
                };
                if sent.is_err() {
                    break;
                }
            }
        }
    };
    let out = child.stdout.take().map(|s| pipe(Box::new(s), None));
    let err = child.stderr.take().map(|s| pipe(Box::new(s), Some(1)));
    let (_, _) = tokio::join!(
        async {
            if let Some(o) = out {
                o.await
            }
        },
        async {
            if let Some(e) = err {
                e.await
            }
        }
    );
    match child.wait().await {
        Ok(s) => s.code().map_or(255, |c| c as u32),
        Err(_) => 255,
    }
}

fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    for &b in bytes {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_on_pty() {
        assert_eq!(crlf(b"a\nb\n"), b"a\r\nb\r\n");
    }
}
