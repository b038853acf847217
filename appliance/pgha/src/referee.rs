//! Asking the referee. A `host:port` referee is only reached (a TCP
//! connect: the controller is on the majority side); an
//! `http://host:port/path` referee is asked whether it reaches the master,
//! `GET path?host=H&port=P`, and answers a body starting `up` or `down`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::decide::Referee;

/// Asks `referee` about the master at `host:port` within `limit`.
pub async fn ask(referee: Option<&str>, host: &str, port: u16, limit: Duration) -> Referee {
    let Some(r) = referee else {
        return Referee::None;
    };
    match tokio::time::timeout(limit, ask_inner(r, host, port)).await {
        Ok(Some(answer)) => answer,
        _ => Referee::Unreachable,
    }
}

async fn ask_inner(referee: &str, host: &str, port: u16) -> Option<Referee> {
    let Some(rest) = referee.strip_prefix("http://") else {
        let addr = if referee.contains(':') {
            referee.to_string()
        } else {
            format!("{referee}:80")
        };
        TcpStream::connect(addr).await.ok()?;
        return Some(Referee::Reachable);
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut s = TcpStream::connect(addr).await.ok()?;
    let request = format!(
        "GET /{path}?host={host}&port={port} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    s.take(4096).read_to_end(&mut answer).await.ok()?;
    parse_answer(&String::from_utf8_lossy(&answer))
}

/// `up`/`down` in the body of a 200 answer; anything else is no answer.
fn parse_answer(response: &str) -> Option<Referee> {
    let (head, body) = response.split_once("\r\n\r\n")?;
    if head.split_whitespace().nth(1) != Some("200") {
        return None;
    }
    match body.trim_start() {
        b if b.starts_with("up") => Some(Referee::SeesMaster),
        b if b.starts_with("down") => Some(Referee::MasterDown),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_from_a_200_body_only() {
        assert_eq!(
            parse_answer("HTTP/1.0 200 OK\r\n\r\nup\n"),
            Some(Referee::SeesMaster)
        );
        assert_eq!(
            parse_answer("HTTP/1.1 200 OK\r\nX: y\r\n\r\ndown"),
            Some(Referee::MasterDown)
        );
        assert_eq!(parse_answer("HTTP/1.0 500 Oops\r\n\r\ndown"), None);
        assert_eq!(parse_answer("HTTP/1.0 200 OK\r\n\r\nmaybe"), None);
    }

    #[tokio::test]
    async fn unreachable_and_unset_referees() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let limit = Duration::from_secs(2);
        assert_eq!(
            ask(Some(&closed), "h", 1, limit).await,
            Referee::Unreachable
        );
        assert_eq!(ask(None, "h", 1, limit).await, Referee::None);
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = open.local_addr().unwrap().to_string();
        assert_eq!(ask(Some(&addr), "h", 1, limit).await, Referee::Reachable);
    }
}
