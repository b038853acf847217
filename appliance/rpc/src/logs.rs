//! `logs.read`: the services' captured output, the newest `lines` of it,
//! and with `follow` a stream of new lines (see [`crate::call_stream`])
//! until the client goes away. Each line is
//! `{at, service, stream, text}` (`at` in ms since the epoch).

use serde::{Deserialize, Serialize};

pub const READ: &str = "logs.read";

/// The lines `logs.read` answers unless told otherwise.
pub const DEFAULT_LINES: usize = 100;

fn hundred() -> usize {
    DEFAULT_LINES
}

/// `logs.read`'s params.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    /// Only this service's lines (all services' when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default = "hundred")]
    pub lines: usize,
    /// Keeps the answer open with new lines (`call_stream`).
    #[serde(default)]
    pub follow: bool,
}

impl Default for Logs {
    fn default() -> Logs {
        Logs {
            service: None,
            lines: DEFAULT_LINES,
            follow: false,
        }
    }
}
