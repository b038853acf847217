//! What a service sees of the store: the current document and the secrets
//! it may read, handed over by the supervisor on the control socket
//! (`services.view`). Services never open `alpharen.db` (root's, 0600), so
//! one that is taken over reads neither the other services' secrets nor
//! the users' password hashes, and cannot write a revision.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::secrets::{reveal_with, revealed_with};
use crate::{Config, StoreError};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct View {
    pub config: Config,
    /// Name → value, only those the service may read.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

impl View {
    pub fn secret(&self, name: &str) -> Option<&str> {
        self.secrets.get(name).map(String::as_str)
    }

    fn lookup(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.secrets.get(name).cloned())
    }

    /// [`crate::Store::reveal`] from the secrets handed over.
    pub fn reveal(&self, field: &str, value: Option<&str>) -> Result<Option<String>, StoreError> {
        reveal_with(field, value, |n| self.lookup(n))
    }

    /// [`crate::Store::revealed`] from the secrets handed over.
    pub fn revealed(&self, config: Config) -> Result<Config, StoreError> {
        revealed_with(config, |n| self.lookup(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_from_the_handed_over_secrets_only() {
        let mut v = View::default();
        v.secrets
            .insert("integrator.security.a".into(), "pw".into());
        assert_eq!(
            v.reveal("x", Some("secret:integrator.security.a")).unwrap(),
            Some("pw".into())
        );
        let e = v.reveal("x", Some("secret:pgha.other")).unwrap_err();
        assert_eq!(e.code(), "missing_secret");
        assert_eq!(v.reveal("x", Some("plain")).unwrap(), Some("plain".into()));
    }
}
