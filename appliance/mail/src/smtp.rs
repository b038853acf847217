//! The SMTP listeners: framing, timeouts, rate and connection limits
//! around [`Session`], STARTTLS and AUTH for clients outside loopback, and
//! the durable spool write before the 250.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::session::{Action, Limits, Session, Transaction, Verdict};
use crate::spool::{Envelope, Origin};
use crate::{Error, Shared, io_err, message, now};

/// Binds `addr` and serves it in a task. Whether a connection is a
/// submission (STARTTLS + AUTH required) depends on the address the client
/// reached, not on the listener: loopback never is.
pub async fn start(shared: Arc<Shared>, addr: SocketAddr) -> Result<JoinHandle<()>, Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(io_err(format!("SMTP listener on {addr}")))?;
    Ok(tokio::spawn(accept_loop(shared, listener)))
}

/// Decrements the session count when a connection ends, however it ends.
struct SessionGuard(Arc<Shared>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "SMTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let max = shared.settings().mail.limits.max_connections as usize;
        if shared.sessions.fetch_add(1, Ordering::SeqCst) >= max {
            shared.sessions.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(%peer, max, "SMTP connection refused: too many connections");
            tokio::spawn(async move {
                let _ = stream
                    .write_all(b"421 4.3.2 Too many connections, try again later\r\n")
                    .await;
            });
            continue;
        }
        let guard = SessionGuard(shared.clone());
        let sh = shared.clone();
        tokio::spawn(async move {
            let _guard = guard;
            if let Err(e) = connection(sh, stream, peer).await {
                tracing::debug!(%peer, error = %e, "SMTP connection ended");
            }
        });
    }
}

/// Reads one line up to `max` bytes (line end included). `Ok(None)` at end
/// of input; `Ok(Some(true))` when the line was longer (the rest of it is
/// skipped, so a client cannot make us buffer without bound).
async fn read_line(
    r: &mut (impl AsyncBufRead + Unpin),
    out: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    out.clear();
    let mut too_long = false;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(None);
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if !too_long {
            if out.len() + take > max {
                too_long = true;
                out.clear();
            } else {
                out.extend_from_slice(&buf[..take]);
            }
        }
        r.consume(take);
        if done {
            return Ok(Some(too_long));
        }
    }
}

/// How a conversation ended: closed, or the client asked for TLS and the
/// plain stream comes back to be wrapped.
enum End<S> {
    Closed,
    StartTls(S),
}

async fn connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
) -> std::io::Result<()> {
    let settings = shared.settings();
    let l = &settings.mail.limits;
    let submission = !stream
        .local_addr()
        .map(|a| a.ip().to_canonical().is_loopback())
        .unwrap_or(true);
    let mut session = Session::new(Limits {
        hostname: settings.hostname.clone(),
        max_message_size: l.max_message_size,
        max_recipients: l.max_recipients as usize,
        max_line_length: l.max_line_length as usize,
        max_errors: l.max_errors,
        submission,
    });
    let _ = stream.set_nodelay(true);
    let End::StartTls(stream) = converse(&shared, &mut session, stream, peer, true).await? else {
        return Ok(());
    };
    let tls_name = shared.settings().mail.tls_name.clone();
    let acceptor = match crate::tls::acceptor(
        &shared.state_dir,
        tls_name.as_deref(),
        &shared.acme_tls,
    )
    .await
    {
        Ok(a) => a,
        Err(e) => {
            // The 220 is out already; all we can do is close.
            tracing::error!(%peer, error = %e, "STARTTLS asked for but no certificate");
            return Ok(());
        }
    };
    let tls = acceptor.accept(stream).await?;
    session.tls_started();
    converse(&shared, &mut session, tls, peer, false).await?;
    Ok(())
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Arc<Shared>,
    session: &mut Session,
    stream: S,
    peer: SocketAddr,
    greet: bool,
) -> std::io::Result<End<S>> {
    let settings = shared.settings();
    let l = &settings.mail.limits;
    let idle = Duration::from_secs(l.idle_timeout);
    let max_line = l.max_line_length as usize;
    let max_per_minute = l.max_commands_per_minute;
    let (r, w) = tokio::io::split(stream);
    let mut r = BufReader::new(r);
    let mut w = BufWriter::new(w);
    if greet {
        w.write_all(session.greeting().as_bytes()).await?;
        w.flush().await?;
    }
    let mut shutdown = shared.shutdown.clone();
    let mut line = Vec::with_capacity(1024);
    let (mut window, mut count) = (Instant::now(), 0u32);
    let closed = |w: BufWriter<_>| async move {
        let mut w = w;
        w.flush().await.map(|()| End::Closed)
    };
    loop {
        let read = if session.in_data() {
            // Message text is finished even while shutting down.
            tokio::time::timeout(idle, read_line(&mut r, &mut line, max_line)).await
        } else {
            tokio::select! {
                res = tokio::time::timeout(idle, read_line(&mut r, &mut line, max_line)) => res,
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
                    w.write_all(format!("421 4.3.2 {} Service shutting down\r\n", settings.hostname).as_bytes()).await?;
                    return closed(w).await;
                }
            }
        };
        let too_long = match read {
            Err(_) => {
                let text = format!(
                    "421 4.4.2 {} Error: timeout exceeded\r\n",
                    settings.hostname
                );
                w.write_all(text.as_bytes()).await?;
                return closed(w).await;
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(None)) => return closed(w).await,
            Ok(Ok(Some(t))) => t,
        };
        let action = if session.in_data() {
            match session.data_line(&line, too_long) {
                None => continue,
                Some(a) => a,
            }
        } else {
            if window.elapsed() >= Duration::from_secs(60) {
                (window, count) = (Instant::now(), 0);
            }
            count += 1;
            if count > max_per_minute {
                tracing::warn!(%peer, "SMTP client over the command rate limit");
                w.write_all(b"421 4.7.0 Error: too many commands, slow down\r\n")
                    .await?;
                return closed(w).await;
            }
            session.command(&line, too_long)
        };
        let action = match action {
            Action::Authenticate { user, password } => {
                let verdict = shared.check_user(&user, &password, peer.ip()).await;
                if verdict != Verdict::Accepted {
                    tracing::warn!(%peer, %user, ?verdict, "SMTP AUTH failed");
                }
                session.auth_result(user, verdict)
            }
            other => other,
        };
        match action {
            Action::Reply(t) => w.write_all(t.as_bytes()).await?,
            Action::StartData(t) => {
                w.write_all(t.as_bytes()).await?;
                w.flush().await?;
            }
            Action::Close(t) => {
                w.write_all(t.as_bytes()).await?;
                return closed(w).await;
            }
            Action::StartTls(t) => {
                if !crate::tls::available(&shared.state_dir) {
                    w.write_all(
                        b"454 4.7.0 TLS not available: the node has no certificate yet\r\n",
                    )
                    .await?;
                } else {
                    w.write_all(t.as_bytes()).await?;
                    w.flush().await?;
                    // Commands pipelined after STARTTLS were sent in the
                    // clear and are dropped with the buffer (CVE-2011-0411).
                    return Ok(End::StartTls(r.into_inner().unsplit(w.into_inner())));
                }
            }
            Action::Authenticate { .. } => unreachable!("answered by auth_result above"),
            Action::Accept(tx) => {
                let text = match accept(shared, tx, peer, session.user()).await {
                    Ok(id) => format!("250 2.0.0 Ok: queued as {id}\r\n"),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot spool a message; client told to retry");
                        "451 4.3.0 Error: queue file write error, try again later\r\n".into()
                    }
                };
                w.write_all(text.as_bytes()).await?;
            }
        }
        // PIPELINING: replies to a batch go out together, when the client
        // has nothing more buffered for us.
        if r.buffer().is_empty() {
            w.flush().await?;
        }
    }
}

async fn accept(
    shared: &Arc<Shared>,
    tx: Transaction,
    peer: SocketAddr,
    user: Option<&str>,
) -> Result<String, Error> {
    let s = shared.settings();
    let t = now();
    // RFC 3848: ESMTPSA = TLS and AUTH.
    let (with, auth) = match user {
        Some(u) => (
            "ESMTPSA",
            format!(" (authenticated as {})", u.replace(['\r', '\n'], "")),
        ),
        None => ("ESMTP", String::new()),
    };
    let received = format!(
        "Received: from {} ([{}]){auth}\r\n\tby {} (alpharen) with {with};\r\n\t{}\r\n",
        tx.helo.replace(['\r', '\n'], ""),
        peer.ip(),
        s.hostname,
        message::rfc5322_date(t)
    );
    let token = format!("{:x}.{:08x}", t, rand::random::<u32>());
    let data = message::stamp(&tx.data, &received, &token, &s.hostname, t);
    let env = Envelope {
        from: tx.from,
        to: tx.to,
        received: t,
        origin: Origin::Smtp,
    };
    let rcpts = env.to.len();
    let id = shared.spool_op(move |sp| sp.enqueue(&env, &data)).await?;
    tracing::info!(%id, rcpts, "message accepted");
    shared.wake.notify_one();
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_cut_and_skipped() {
        let input: &[u8] = b"short\r\nxxxxxxxxxxxxxxxxxxxxxxxxx\r\nnext\r\ntail";
        let mut r = BufReader::with_capacity(4, input);
        let mut line = Vec::new();
        assert_eq!(read_line(&mut r, &mut line, 10).await.unwrap(), Some(false));
        assert_eq!(line, b"short\r\n");
        assert_eq!(read_line(&mut r, &mut line, 10).await.unwrap(), Some(true));
        assert_eq!(read_line(&mut r, &mut line, 10).await.unwrap(), Some(false));
        assert_eq!(line, b"next\r\n");
        assert_eq!(read_line(&mut r, &mut line, 10).await.unwrap(), None);
    }
}
