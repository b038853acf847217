//! `system update URL`: the bundle read from an HTTP(S) server as one
//! stream that survives dropped connections. When a connection breaks (or
//! ends before the length the server announced), the download goes on
//! from the byte it reached with an HTTP Range request, a bounded number
//! of times in a row. Nothing is staged on disk: the bytes go straight to
//! the supervisor, which verifies them as they come, so a resumed
//! download that spliced in other bytes is refused like any corrupt
//! bundle. `If-Range` with the first answer's `ETag` (or `Last-Modified`)
//! makes a server that changed the file answer the whole new file, which
//! is refused here instead.

use std::io::{self, Read};
use std::time::Duration;

/// Resumes in a row without a byte of progress before giving up.
pub const MAX_RETRIES: u32 = 5;
/// A connection that delivers nothing for this long counts as dropped.
const READ_IDLE: Duration = Duration::from_secs(30);

/// What an answer to a (ranged) GET means for a download at `offset`.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The bytes from `offset` on; the whole file's length if known.
    Continue { total: Option<u64> },
    /// Nothing to do with it: the reason, for the user.
    Refused(String),
}

/// Decides what an answer with `status`, `Content-Range` and
/// `Content-Length` is worth to a download that has `offset` bytes.
pub fn judge(
    offset: u64,
    status: u16,
    content_range: Option<&str>,
    content_length: Option<u64>,
) -> Answer {
    match (status, offset) {
        (200, 0) => Answer::Continue {
            total: content_length,
        },
        (200, _) => Answer::Refused(format!(
            "the server answered the whole file again instead of the rest from byte {offset} (it does not support HTTP Range, or the file changed)"
        )),
        (206, _) => match content_range.and_then(parse_content_range) {
            Some((start, total)) if start == offset => Answer::Continue { total },
            Some((start, _)) => Answer::Refused(format!(
                "asked for the rest from byte {offset}, the server sent bytes from {start}"
            )),
            None => Answer::Refused(format!(
                "the server's partial answer has no usable Content-Range ({content_range:?})"
            )),
        },
        (s, _) => Answer::Refused(format!("the server answered HTTP {s}")),
    }
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`) → (START, TOTAL).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, total))
}

/// Called with (offset, why) before each resume, to tell the user.
pub type OnResume = Box<dyn Fn(u64, &str)>;

/// The bundle at a URL as a reader that resumes broken connections.
pub struct Download {
    agent: ureq::Agent,
    url: String,
    /// Bytes handed out so far.
    offset: u64,
    total: Option<u64>,
    /// `ETag` or `Last-Modified` of the first answer, for `If-Range`.
    validator: Option<String>,
    body: Option<ureq::BodyReader<'static>>,
    retries: u32,
    on_resume: OnResume,
}

impl Download {
    pub fn new(url: &str, on_resume: OnResume) -> Download {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(READ_IDLE))
            .timeout_per_read(Some(READ_IDLE))
            .build()
            .into();
        Download {
            agent,
            url: url.to_string(),
            offset: 0,
            total: None,
            validator: None,
            body: None,
            retries: 0,
            on_resume,
        }
    }

    /// GETs the rest of the file from `offset`.
    fn open(&mut self) -> io::Result<()> {
        let mut req = self.agent.get(&self.url);
        if self.offset > 0 {
            req = req.header("range", &format!("bytes={}-", self.offset));
            if let Some(v) = &self.validator {
                req = req.header("if-range", v);
            }
        }
        let resp = req.call().map_err(|e| io::Error::other(e.to_string()))?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        match judge(
            self.offset,
            resp.status().as_u16(),
            header("content-range").as_deref(),
            length,
        ) {
            Answer::Continue { total } => {
                if self.offset == 0 {
                    self.total = total;
                    self.validator = header("etag").or_else(|| header("last-modified"));
                }
                self.body = Some(resp.into_body().into_reader());
                Ok(())
            }
            Answer::Refused(why) => Err(io::Error::new(io::ErrorKind::InvalidData, why)),
        }
    }

    /// After a broken connection: the next try, or the error when the
    /// tries ran out.
    fn retry(&mut self, why: String) -> io::Result<()> {
        self.body = None;
        if self.retries >= MAX_RETRIES {
            return Err(io::Error::other(format!(
                "the download broke off at byte {} and {MAX_RETRIES} resumes in a row brought nothing: {why}",
                self.offset
            )));
        }
        self.retries += 1;
        (self.on_resume)(self.offset, &why);
        std::thread::sleep(Duration::from_secs(1 << (self.retries - 1).min(4)));
        Ok(())
    }
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(body) = self.body.as_mut() else {
                match self.open() {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => return Err(e),
                    Err(e) => self.retry(e.to_string())?,
                }
                continue;
            };
            match body.read(buf) {
                Ok(0) if self.total.is_some_and(|t| self.offset < t) => {
                    let why = format!("the connection ended at byte {}", self.offset);
                    self.retry(why)?;
                }
                Ok(0) => return Ok(0),
                Ok(n) => {
                    self.offset += n as u64;
                    self.retries = 0;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.retry(e.to_string())?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_download_takes_the_whole_file() {
        assert_eq!(
            judge(0, 200, None, Some(1000)),
            Answer::Continue { total: Some(1000) }
        );
        assert_eq!(judge(0, 200, None, None), Answer::Continue { total: None });
    }

    #[test]
    fn a_resume_takes_only_the_rest_from_the_right_byte() {
        assert_eq!(
            judge(400, 206, Some("bytes 400-999/1000"), Some(600)),
            Answer::Continue { total: Some(1000) }
        );
        assert_eq!(
            judge(400, 206, Some("bytes 400-999/*"), None),
            Answer::Continue { total: None }
        );
        assert!(matches!(
            judge(400, 206, Some("bytes 0-999/1000"), None),
            Answer::Refused(m) if m.contains("sent bytes from 0")
        ));
        assert!(matches!(
            judge(400, 206, Some("bytes=400-"), None),
            Answer::Refused(m) if m.contains("Content-Range")
        ));
        assert!(matches!(
            judge(400, 200, None, Some(1000)),
            Answer::Refused(m) if m.contains("does not support HTTP Range")
        ));
        assert!(matches!(
            judge(0, 404, None, None),
            Answer::Refused(m) if m.contains("HTTP 404")
        ));
    }
}
