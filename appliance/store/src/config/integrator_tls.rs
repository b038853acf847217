//! `integrator.tls`: how the load-balancer port (:11223) speaks.
//!
//! ```toml
//! [integrator]
//! tls = "node"                      # default: the node's certificate in <state>/tls/
//! tls = "off"                       # plain HTTP, only when the config says so
//! tls = { cert = "/data/tls/lb.pem", key = "/data/tls/lb.key" }   # PEM files
//! ```

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum IntegratorTls {
    /// `"node"` or `"off"`.
    Mode(TlsMode),
    /// A certificate chain and its private key, PEM files on the node.
    Files(TlsFiles),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// The node's own certificate (`<state>/tls/cert.pem`, `key.pem`), the
    /// one the web service serves.
    Node,
    /// Plain HTTP.
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: String,
    pub key: String,
}

impl Default for IntegratorTls {
    fn default() -> IntegratorTls {
        IntegratorTls::Mode(TlsMode::Node)
    }
}

impl IntegratorTls {
    pub fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        if let IntegratorTls::Files(f) = self {
            for (key, value) in [("cert", &f.cert), ("key", &f.key)] {
                if !value.starts_with('/') {
                    check::push(
                        out,
                        &path.key(key),
                        format!("{value:?} is not an absolute path to a PEM file"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        tls: IntegratorTls,
    }

    fn parse(s: &str) -> Result<IntegratorTls, toml::de::Error> {
        toml::from_str::<Doc>(s).map(|d| d.tls)
    }

    #[test]
    fn three_shapes_parse_and_bad_ones_do_not() {
        assert_eq!(parse("tls = \"node\"").unwrap(), IntegratorTls::default());
        assert_eq!(
            parse("tls = \"off\"").unwrap(),
            IntegratorTls::Mode(TlsMode::Off)
        );
        let files = parse("tls = { cert = \"/a.pem\", key = \"/a.key\" }").unwrap();
        assert!(matches!(files, IntegratorTls::Files(_)));
        assert!(parse("tls = \"on\"").is_err());
        assert!(parse("tls = { cert = \"/a.pem\" }").is_err());
    }

    #[test]
    fn relative_paths_are_refused_with_their_key() {
        let tls = IntegratorTls::Files(TlsFiles {
            cert: "lb.pem".into(),
            key: "/lb.key".into(),
        });
        let mut out = Vec::new();
        tls.validate(&KeyPath::root().key("integrator").key("tls"), &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].path.ends_with("tls.cert"), "{:?}", out[0]);
    }
}
