use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

/// `[update]`: how a freshly installed system proves itself on its trial
/// boot (docs/update.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Update {
    /// Run once every service has settled on a trial boot; the new slot
    /// is committed only if it exits 0 within its timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<TrialCheck>,
}

impl Update {
    /// Left out of stored documents while unset, so a configuration that
    /// does not use it stays readable by a version without `[update]`
    /// (the old slot a failed update falls back to).
    pub fn is_default(&self) -> bool {
        *self == Update::default()
    }
}

/// The user's health check: a program of the image (a shell with a
/// script in `args`, `wget`, ...), run without privileges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TrialCheck {
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Seconds it may run before it counts as failed.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
}

fn default_timeout() -> u64 {
    60
}

impl Update {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        let Some(hc) = &self.health_check else {
            return;
        };
        let at = path.key("health_check");
        if !hc.command.starts_with('/') {
            check::push(
                out,
                &at.key("command"),
                format!("{:?} must be an absolute path", hc.command),
            );
        }
        if hc.args.iter().any(|a| a.contains('\0')) {
            check::push(out, &at.key("args"), "an argument contains a NUL byte");
        }
        if !(1..=600).contains(&hc.timeout) {
            check::push(out, &at.key("timeout"), "must be between 1 and 600 seconds");
        }
    }
}
