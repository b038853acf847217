//! The one-line join token `ctl cluster init` prints and `ctl cluster
//! join` takes, in the spirit of k3s's: `arc1.<CA fingerprint, hex>.<join
//! secret>@<host:port of a member's web API>`. The fingerprint pins the
//! cluster CA; the secret authenticates the joiner and encrypts what it
//! is sent back.

use base64::Engine;

use crate::Error;

const PREFIX: &str = "arc1.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// `host:port` of a member's web API (`[v6]:port` for IPv6).
    pub addr: String,
    pub ca_fingerprint: [u8; 32],
    /// URL-safe base64 without padding, 32 random bytes.
    pub secret: String,
}

fn bad(why: &str) -> Error {
    Error::Token(why.to_string())
}

/// A fresh join secret.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl JoinToken {
    pub fn encode(&self) -> String {
        let fp: String = self
            .ca_fingerprint
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{PREFIX}{fp}.{}@{}", self.secret, self.addr)
    }

    pub fn parse(text: &str) -> Result<JoinToken, Error> {
        let rest = text.trim().strip_prefix(PREFIX).ok_or_else(|| {
            bad("a join token starts with \"arc1.\" (ctl cluster token prints one)")
        })?;
        let (keys, addr) = rest
            .split_once('@')
            .ok_or_else(|| bad("the join token has no \"@host:port\" at its end"))?;
        let (fp, secret) = keys
            .split_once('.')
            .ok_or_else(|| bad("the join token has no secret after its fingerprint"))?;
        if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the join token's CA fingerprint is not 64 hex digits"));
        }
        let mut ca_fingerprint = [0u8; 32];
        for (i, chunk) in fp.as_bytes().chunks(2).enumerate() {
            let pair = std::str::from_utf8(chunk).map_err(|_| bad("fingerprint"))?;
            ca_fingerprint[i] = u8::from_str_radix(pair, 16).map_err(|_| bad("fingerprint"))?;
        }
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(secret)
            .map_err(|_| bad("the join token's secret is not URL-safe base64"))?;
        if decoded.len() < 16 {
            return Err(bad("the join token's secret is too short"));
        }
        if alpharen_store::config::split_host_port(addr).is_none() {
            return Err(bad(
                "the join token's address is not host:port (IPv6 in brackets)",
            ));
        }
        Ok(JoinToken {
            addr: addr.to_string(),
            ca_fingerprint,
            secret: secret.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> JoinToken {
        JoinToken {
            addr: "10.0.0.1:443".into(),
            ca_fingerprint: [0xab; 32],
            secret: new_secret(),
        }
    }

    #[test]
    fn round_trip() {
        let t = token();
        let text = t.encode();
        assert!(text.starts_with("arc1.abab"), "{text}");
        assert_eq!(JoinToken::parse(&format!("  {text}\n")).unwrap(), t);
        let v6 = JoinToken {
            addr: "[fd00::1]:8443".into(),
            ..t
        };
        assert_eq!(JoinToken::parse(&v6.encode()).unwrap(), v6);
    }

    #[test]
    fn damaged_tokens_say_what_is_wrong() {
        let text = token().encode();
        for (bad, says) in [
            (text.replacen("arc1.", "arc2.", 1), "starts with"),
            (text.split('@').next().unwrap().to_string(), "@host:port"),
            (text.replacen("abab", "zz", 1), "64 hex digits"),
            (text.replace("@10.0.0.1:443", "@10.0.0.1"), "host:port"),
            (format!("arc1.{}.c2hvcnQ@a:1", "ab".repeat(32)), "too short"),
        ] {
            let e = JoinToken::parse(&bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
