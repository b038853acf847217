//! The mail task's client: plain SMTP to the node's own listener on
//! loopback (trusted there, no AUTH), which queues and relays the message
//! like any other mail of the node (docs/mail.md).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A message to queue at 127.0.0.1:`port`.
pub struct Message<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub subject: &'a str,
    pub body: &'a str,
}

/// The message text: headers, then the body with CRLF line ends and
/// dot-stuffing (RFC 5321 4.5.2).
pub fn render(m: &Message<'_>, date: &str) -> String {
    let mut out = format!(
        "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {date}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
        m.from,
        m.to.join(", "),
        m.subject.replace(['\r', '\n'], " ")
    );
    for line in m.body.lines() {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

async fn reply(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    want: char,
) -> Result<(), String> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.map_err(|e| e.to_string())? == 0 {
            return Err("the SMTP listener closed the connection".into());
        }
        if line.as_bytes().get(3) == Some(&b'-') {
            continue;
        }
        return if line.starts_with(want) {
            Ok(())
        } else {
            Err(format!("SMTP listener answered {}", line.trim_end()))
        };
    }
}

pub async fn send(port: u16, m: &Message<'_>) -> Result<(), String> {
    let run = async {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| {
            format!("cannot reach the node's SMTP listener on 127.0.0.1:{port}: {e}")
        })?;
        let (rd, mut wr) = stream.into_split();
        let mut rd = BufReader::new(rd);
        reply(&mut rd, '2').await?;
        let mut cmds = vec![
            ("EHLO reaction\r\n".to_string(), '2'),
            (format!("MAIL FROM:<{}>\r\n", m.from), '2'),
        ];
        for t in m.to {
            cmds.push((format!("RCPT TO:<{t}>\r\n"), '2'));
        }
        cmds.push(("DATA\r\n".into(), '3'));
        cmds.push((
            format!(
                "{}.\r\n",
                render(m, &httpdate::fmt_http_date(std::time::SystemTime::now()))
            ),
            '2',
        ));
        for (cmd, want) in cmds {
            wr.write_all(cmd.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            reply(&mut rd, want).await?;
        }
        let _ = wr.write_all(b"QUIT\r\n").await;
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .map_err(|_| "the SMTP listener did not answer within 30 s".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_lines_are_crlf_and_dot_stuffed() {
        let to = vec!["a@example.net".to_string()];
        let m = Message {
            from: "r@n1",
            to: &to,
            subject: "x\ny",
            body: "one\n.two\n",
        };
        let text = render(&m, "D");
        assert!(text.contains("Subject: x y\r\n"));
        assert!(text.ends_with("\r\n\r\none\r\n..two\r\n"));
    }
}
