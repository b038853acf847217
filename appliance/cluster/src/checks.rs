//! What a caller asks the cluster service for, checked before anything
//! is signed or written.

use alpharen_rpc::RpcError;

use crate::join;

/// Refuses what would make a certificate or a configuration that cannot
/// be, before anything is made: a cluster name and an advertised address.
pub(crate) fn check_names(name: Option<&str>, advertise: &Option<String>) -> Result<(), RpcError> {
    if let Some(n) = name
        && !alpharen_store::config::cluster_name_ok(n)
    {
        return Err(RpcError::invalid_params(format!(
            "the cluster name {n:?} is not allowed: at most 32 letters, digits, '-' or '_'"
        )));
    }
    match advertise {
        Some(a) if !alpharen_store::host::is_address(a) => Err(RpcError::invalid_params(format!(
            "advertise {a:?} is not an IP address or a host name"
        ))),
        _ => Ok(()),
    }
}

/// Checks what a joiner asks for before anything is signed.
pub(crate) fn check_request(r: &join::Request) -> Result<(), RpcError> {
    let name_ok = !r.node.is_empty()
        && r.node.len() <= 63
        && r.node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !name_ok {
        return Err(RpcError::invalid_params(format!(
            "the joiner's name {:?} is not a host name",
            r.node
        )));
    }
    if alpharen_store::config::split_host_port(&r.route).is_none() {
        return Err(RpcError::invalid_params(format!(
            "the joiner's route {:?} is not host:port",
            r.route
        )));
    }
    if r.sans.len() > 16 || r.sans.iter().any(|s| s.is_empty() || s.len() > 253) {
        return Err(RpcError::invalid_params(
            "the joiner asks for at most 16 names of at most 253 characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_be_are_refused_first() {
        assert!(check_names(Some("lab-1"), &Some("10.0.0.1".into())).is_ok());
        assert!(check_names(Some("lab"), &Some("node-a.lan".into())).is_ok());
        assert!(check_names(Some("l\u{fd}b"), &None).is_err());
        assert!(check_names(None, &Some("\u{1f3fb}".into())).is_err());
        assert!(check_names(None, &Some("10.0.0.1:6222".into())).is_err());
    }

    #[test]
    fn a_joiner_asks_only_for_sane_names() {
        let good = join::Request {
            node: "node-b".into(),
            sans: vec!["10.0.0.2".into()],
            route: "10.0.0.2:6222".into(),
            nonce: join::new_nonce(),
            ts: 0,
        };
        assert!(check_request(&good).is_ok());
        for bad in [
            join::Request {
                node: "b;rm".into(),
                ..good.clone()
            },
            join::Request {
                route: "nowhere".into(),
                ..good.clone()
            },
            join::Request {
                sans: vec![String::new()],
                ..good.clone()
            },
        ] {
            assert!(check_request(&bad).is_err(), "{bad:?}");
        }
    }
}
