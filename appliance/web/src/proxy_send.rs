//! Sending one request to a route's backend: the route's deadlines, why
//! a request got no answer ([`Failure`]), and the client's request body
//! on its way ([`Lingering`]).

use std::error::Error as StdError;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use alpharen_store::config::ProxyRoute;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::StreamExt;
use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};
use hyper::client::conn::TrySendError;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::{cause, causes, page};

/// How long the rest of a request body the backend did not read is
/// still taken from the client and discarded (nginx's `lingering_time`).
const LINGERING_TIME: Duration = Duration::from_secs(30);

/// Why a request got no answer from the backend.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// Refused, reset, no route: the innermost cause.
    #[error("{0}")]
    Unreachable(String),
    #[error("no connection within {0} s")]
    ConnectTimeout(u64),
    #[error("no response within {0} s")]
    ResponseTimeout(u64),
    /// The backend's certificate was refused.
    #[error("TLS: {0}")]
    Tls(String),
}

impl Failure {
    pub(super) fn page(&self, host: &str) -> Response {
        let bad_gateway =
            |detail: String| page(StatusCode::BAD_GATEWAY, "502 Bad Gateway", &detail);
        match self {
            Failure::Unreachable(_) => bad_gateway(format!(
                "The backend for {host} is not answering. Try again in a moment."
            )),
            Failure::ConnectTimeout(s) => bad_gateway(format!(
                "The backend for {host} did not take the connection within {s} s."
            )),
            Failure::Tls(e) => bad_gateway(format!(
                "The backend for {host} is reached over HTTPS and its certificate was refused \
                 ({e}). If it uses a private CA, give the route that CA as ca_file."
            )),
            Failure::ResponseTimeout(s) => page(
                StatusCode::GATEWAY_TIMEOUT,
                "504 Gateway Timeout",
                &format!("The backend for {host} did not answer within {s} s."),
            ),
        }
    }
}

/// Request bodies of a known length up to this are read before they go
/// to an HTTP/2 backend, and kept to be sent again if it refuses them.
const REPLAY_LIMIT: usize = 64 * 1024;

/// The body to send over HTTP/2 and, if it can be sent again (empty, or
/// small enough to keep), a copy.
pub(super) async fn replayable(body: Body) -> (Body, Option<Body>) {
    if body.is_end_stream() {
        return (body, Some(Body::empty()));
    }
    if body
        .size_hint()
        .exact()
        .is_none_or(|n| n > REPLAY_LIMIT as u64)
    {
        return (body, None);
    }
    match axum::body::to_bytes(body, REPLAY_LIMIT).await {
        Ok(bytes) => (Body::from(bytes.clone()), Some(Body::from(bytes))),
        // The client's upload failed: so does the request.
        Err(e) => (
            Body::from_stream(futures_util::stream::once(
                async move { Err::<Bytes, _>(e) },
            )),
            None,
        ),
    }
}

/// Why a request handed to a backend connection got no answer.
#[derive(Debug)]
pub(super) enum SendError {
    /// The connection closed before the request went out.
    Unsent(Box<Request>),
    /// The backend left it unprocessed: its stream was above a GOAWAY's
    /// last stream (nginx's `keepalive_requests`), or refused
    /// (REFUSED_STREAM). RFC 9113 §8.7: safe to send again, but its body
    /// may have been taken ([`replayable`] keeps small ones).
    Refused(Failure),
    /// The connection closed or was reset before the answer's head: the
    /// backend may have closed a kept-alive connection as the request
    /// went out (its own idle timeout), or failed while working on it.
    /// Sent again only with an idempotent method (RFC 9110 §9.2.2), as
    /// nginx (on its cached connections) and Go's client do.
    Dropped(Failure),
    Failed(Failure),
}

impl SendError {
    /// What the client is told when the request is not sent again.
    pub(super) fn failure(self) -> Failure {
        match self {
            SendError::Unsent(_) => {
                Failure::Unreachable("the connection closed before the request went out".into())
            }
            SendError::Refused(f) | SendError::Dropped(f) | SendError::Failed(f) => f,
        }
    }
}

/// A TCP connection to a backend, without Nagle's delay (HTTP/1.1 and
/// HTTP/2 alike).
pub(super) async fn tcp(host: &str, port: u16) -> Result<TcpStream, Failure> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| failure(&e))?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// The request to send once more after `e`, on a new connection: one
/// that was not sent, one the backend refused unprocessed, or an
/// idempotent one whose connection dropped, when it can be sent again
/// (`replay`, a copy, see [`replayable`]), as hyper-util's pool and
/// nginx retry such requests.
pub(super) fn again(e: SendError, replay: Option<Request>) -> Result<Request, Failure> {
    match e {
        SendError::Unsent(out) => Ok(*out),
        SendError::Refused(f) => replay.ok_or(f),
        SendError::Dropped(f) => replay.filter(|r| r.method().is_idempotent()).ok_or(f),
        SendError::Failed(f) => Err(f),
    }
}

/// Sends over the worker's HTTP/2 connection, with the route's
/// `response_timeout` until the response headers.
pub(super) async fn send_h2(
    mut sender: hyper::client::conn::http2::SendRequest<Body>,
    route: &ProxyRoute,
    out: Request,
) -> Result<hyper::Response<hyper::body::Incoming>, SendError> {
    if sender.is_closed() {
        return Err(SendError::Unsent(Box::new(out)));
    }
    answer(sender.try_send_request(out), route).await
}

/// Waits the route's `response_timeout` for the response headers of a
/// request handed to a connection (HTTP/1.1 or HTTP/2), and says what
/// became of one that got none.
pub(super) async fn answer(
    sent: impl Future<Output = Result<hyper::Response<hyper::body::Incoming>, TrySendError<Request>>>,
    route: &ProxyRoute,
) -> Result<hyper::Response<hyper::body::Incoming>, SendError> {
    match tokio::time::timeout(Duration::from_secs(route.response_timeout), sent).await {
        Err(_) => Err(SendError::Failed(Failure::ResponseTimeout(
            route.response_timeout,
        ))),
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(mut e)) => match e.take_message() {
            Some(out) => Err(SendError::Unsent(Box::new(out))),
            None if refused(e.error()) => Err(SendError::Refused(failure(e.error()))),
            None if dropped(e.error()) => Err(SendError::Dropped(failure(e.error()))),
            None => Err(SendError::Failed(failure(e.error()))),
        },
    }
}

/// Whether an HTTP/2 error says the backend did not process the stream.
fn refused(e: &(dyn StdError + 'static)) -> bool {
    causes(e)
        .filter_map(|c| c.downcast_ref::<h2::Error>())
        .any(|h| {
            h.is_remote() && (h.is_go_away() || h.reason() == Some(h2::Reason::REFUSED_STREAM))
        })
}

/// Whether the connection ended under a request, before its answer's
/// head: closed (hyper's incomplete message) or reset.
fn dropped(e: &hyper::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    e.is_incomplete_message()
        || causes(e)
            .filter_map(|c| c.downcast_ref::<std::io::Error>())
            .any(|io| {
                matches!(
                    io.kind(),
                    ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
                )
            })
}

/// A refused certificate, or else the innermost cause.
pub(crate) fn failure(e: &(dyn StdError + 'static)) -> Failure {
    match causes(e).find_map(|c| c.downcast_ref::<rustls::Error>()) {
        Some(tls) => Failure::Tls(tls.to_string()),
        None => Failure::Unreachable(cause(e)),
    }
}

/// A client's request body on its way to the backend. A backend may
/// answer before it has read the whole body (nginx's `return`, an early
/// 413) and drop the rest (over HTTP/2 it resets its stream). The client
/// is then still uploading; what is left is read and discarded, and the
/// answer goes to the client once its upload is done ([`after_upload`]),
/// as with nginx's request buffering. Clients do not expect a complete
/// answer while they upload: curl 7.88 stops sending and stalls, or,
/// when the proxy resets its HTTP/2 stream to stop the upload, reports
/// an error (exit 92) and no status at all.
pub(super) struct Lingering {
    body: Option<Body>,
    /// Dropped once the body has been read to its end.
    done: Option<oneshot::Sender<()>>,
}

impl Lingering {
    /// The body to send, and what the answer waits for (`None` for an
    /// empty body).
    pub(super) fn new(body: Body) -> (Lingering, Option<oneshot::Receiver<()>>) {
        if body.is_end_stream() {
            return (
                Lingering {
                    body: Some(body),
                    done: None,
                },
                None,
            );
        }
        let (done, read) = oneshot::channel();
        let body = Some(body);
        let done = Some(done);
        (Lingering { body, done }, Some(read))
    }
}

impl HttpBody for Lingering {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = match self.body.as_mut() {
            Some(body) => ready!(Pin::new(body).poll_frame(cx)),
            None => None,
        };
        if !matches!(frame, Some(Ok(_))) || self.is_end_stream() {
            self.done = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        if let (Some(body), Some(done)) = (self.body.take(), self.done.take())
            && !body.is_end_stream()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(discard(body, done));
        }
    }
}

/// Reads a body to its end (or an error), for at most [`LINGERING_TIME`].
async fn discard(body: Body, done: oneshot::Sender<()>) {
    let mut data = body.into_data_stream();
    let _ = tokio::time::timeout(LINGERING_TIME, async {
        while let Some(Ok(_)) = data.next().await {}
    })
    .await;
    drop(done);
}

/// Waits until the client's request body has been read, sent on or
/// discarded ([`Lingering`]), for at most [`LINGERING_TIME`]: a backend
/// that streams its answer while the upload goes on still gets it
/// through, only later.
pub(super) async fn after_upload(read: Option<oneshot::Receiver<()>>) {
    if let Some(read) = read {
        let _ = tokio::time::timeout(LINGERING_TIME, read).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of `chunks` chunks from a channel, and how many were taken.
    fn counted(chunks: usize) -> (Body, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t = taken.clone();
        let stream = futures_util::stream::iter(0..chunks).map(move |_| {
            t.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, std::io::Error>(Bytes::from_static(b"chunk"))
        });
        (Body::from_stream(stream), taken)
    }

    #[tokio::test]
    async fn a_body_the_backend_left_unread_is_read_before_the_answer() {
        let (body, taken) = counted(5);
        let (mut sent, read) = Lingering::new(body);
        let first = std::future::poll_fn(|cx| Pin::new(&mut sent).poll_frame(cx)).await;
        assert!(matches!(first, Some(Ok(_))));
        drop(sent); // the backend answered early and reset its stream
        after_upload(read).await;
        assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_body_sent_in_full_lets_the_answer_go() {
        let (body, taken) = counted(3);
        let (mut sent, read) = Lingering::new(body);
        while let Some(f) = std::future::poll_fn(|cx| Pin::new(&mut sent).poll_frame(cx)).await {
            assert!(f.is_ok());
        }
        // Still held by the connection, yet the answer does not wait.
        after_upload(read).await;
        assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 3);
        drop(sent);
    }

    #[tokio::test]
    async fn a_request_a_closed_connection_did_not_send_comes_back() {
        let (client, server) = tokio::io::duplex(4096);
        let (sender, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .handshake(hyper_util::rt::TokioIo::new(client))
                .await
                .unwrap();
        drop(server);
        let _ = conn.await;
        let route = super::super::tests::route("a.test", None, "http://127.0.0.1:9");
        let mut req = Request::new(Body::from("kept"));
        *req.uri_mut() = "http://a.test/x".parse().unwrap();
        match send_h2(sender, &route, req).await {
            Err(SendError::Unsent(req)) => assert_eq!(req.uri().path(), "/x"),
            Err(SendError::Failed(f) | SendError::Refused(f) | SendError::Dropped(f)) => {
                panic!("not given back: {f}")
            }
            Ok(_) => panic!("answered"),
        }
    }

    #[tokio::test]
    async fn a_request_under_which_the_connection_dropped_is_told_apart() {
        let (client, server) = tokio::io::duplex(4096);
        let backend = tokio::spawn(async move {
            let mut conn = h2::server::handshake(server).await.unwrap();
            // Takes the request, then the connection goes.
            let _ = conn.accept().await;
        });
        let (sender, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .handshake(hyper_util::rt::TokioIo::new(client))
                .await
                .unwrap();
        tokio::spawn(conn);
        let route = super::super::tests::route("a.test", None, "http://127.0.0.1:9");
        let mut req = Request::new(Body::empty());
        *req.uri_mut() = "http://a.test/x".parse().unwrap();
        let sent = send_h2(sender, &route, req).await;
        backend.await.unwrap();
        match sent {
            Err(SendError::Dropped(_)) => {}
            Err(SendError::Failed(f) | SendError::Refused(f)) => panic!("not as dropped: {f}"),
            Err(SendError::Unsent(_)) => panic!("not sent"),
            Ok(_) => panic!("answered"),
        }
    }

    #[test]
    fn only_unsent_refused_or_idempotent_dropped_requests_go_again() {
        let req = || Request::new(Body::empty());
        let failed = || Failure::Unreachable("reset".into());
        assert!(again(SendError::Dropped(failed()), Some(req())).is_ok());
        let mut post = req();
        *post.method_mut() = axum::http::Method::POST;
        assert!(
            again(SendError::Dropped(failed()), Some(post)).is_err(),
            "not idempotent"
        );
        assert!(
            again(SendError::Dropped(failed()), None).is_err(),
            "body gone"
        );
        assert!(again(SendError::Unsent(Box::new(req())), None).is_ok());
        assert!(again(SendError::Refused(failed()), Some(req())).is_ok());
        assert!(
            again(SendError::Refused(failed()), None).is_err(),
            "body gone"
        );
        assert!(
            again(SendError::Failed(failed()), Some(req())).is_err(),
            "processed"
        );
    }

    #[tokio::test]
    async fn small_bodies_are_kept_to_send_again() {
        let (sent, copy) = replayable(Body::from("form=1")).await;
        let sent = axum::body::to_bytes(sent, 100).await.unwrap();
        let copy = axum::body::to_bytes(copy.unwrap(), 100).await.unwrap();
        assert_eq!((&sent[..], &copy[..]), (&b"form=1"[..], &b"form=1"[..]));
        assert!(replayable(Body::empty()).await.1.is_some());
        let big = Body::from(vec![0u8; REPLAY_LIMIT + 1]);
        assert!(replayable(big).await.1.is_none(), "too big to keep");
        let (unknown, _) = counted(2);
        assert!(replayable(unknown).await.1.is_none(), "length unknown");
    }

    #[test]
    fn an_empty_body_is_not_waited_for() {
        let (_, read) = Lingering::new(Body::empty());
        assert!(read.is_none());
    }
}
