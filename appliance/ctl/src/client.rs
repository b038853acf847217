//! The connection to the node as the commands see it: the control socket
//! client plus the acting user. The ssh door runs `alpharen ctl` for its
//! logged-in user and says so in `ALPHAREN_AUTHOR`; changes are then
//! recorded under that name instead of the Unix user of the socket peer.

use alpharen_rpc::{Client, ClientError, backup, config, users};

use crate::remote::Remote;
use serde::Serialize;
use serde_json::{Value, json};

/// The environment variable naming the acting user. Only an environment
/// variable, not an option: an ssh user controls the arguments of the
/// command it runs, not the environment the ssh door gives it.
pub const AUTHOR_ENV: &str = "ALPHAREN_AUTHOR";

/// Methods whose params take an optional `author` (the supervisor's params
/// structs deny unknown fields, so no other method may get one; the
/// integrator's take it for its deploy registry).
const AUTHORED: &[&str] = &[
    config::APPLY,
    config::SET,
    config::ROLLBACK,
    config::CONFIRM,
    users::ADD,
    users::PASSWD,
    users::DEL,
    backup::RESTORE,
    "integrator.deploy",
    "integrator.rollback",
    "integrator.undeploy",
    "integrator.invoke",
    "integrator.package_add",
    "integrator.package_remove",
];

pub struct NodeClient {
    transport: Transport,
    author: Option<String>,
}

/// The control socket on the node, or the API of a node elsewhere
/// (`--node`), where the token says who acts.
pub enum Transport {
    Socket(Client),
    Remote(Remote),
}

impl NodeClient {
    pub fn new(transport: Transport, author: Option<String>) -> NodeClient {
        let author = author.filter(|a| !a.trim().is_empty());
        NodeClient { transport, author }
    }

    /// Calls `method` with its params (an `alpharen_rpc` params struct, or
    /// JSON for a service's own method).
    pub fn call(&mut self, method: &str, params: impl Serialize) -> Result<Value, ClientError> {
        let params = alpharen_rpc::to_params(&params);
        match &mut self.transport {
            Transport::Socket(c) => {
                c.call(method, with_author(method, params, self.author.as_deref()))
            }
            Transport::Remote(r) => r.call(method, &params),
        }
    }

    /// A call that takes an upload (`alpharen_rpc::upload`): `input` to
    /// its end, `progress` hearing the bytes sent; on a node elsewhere the
    /// method's API route gets it as a streamed request body.
    pub fn upload(
        &mut self,
        method: &str,
        input: &mut dyn std::io::Read,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Value, ClientError> {
        match &mut self.transport {
            Transport::Socket(c) => c.upload(method, json!({}), input, progress),
            Transport::Remote(r) => r.upload(method, input, progress),
        }
    }

    /// [`Self::upload`] of a local file: passed to the supervisor to read
    /// itself when it is on this machine, its bytes uploaded otherwise.
    /// `progress` hears only uploaded bytes.
    pub fn upload_file(
        &mut self,
        method: &str,
        mut file: std::fs::File,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Value, ClientError> {
        match &mut self.transport {
            Transport::Socket(c) => c.upload_file(method, json!({}), &file),
            Transport::Remote(r) => r.upload(method, &mut file, progress),
        }
    }

    /// After a streaming call: the next streamed item, `None` at the end.
    pub fn next_item(&mut self) -> Result<Option<Value>, ClientError> {
        match &mut self.transport {
            Transport::Socket(c) => c.next_item(),
            Transport::Remote(_) => Ok(None),
        }
    }
}

/// `params` with `author` added when the method takes one, an author is
/// known and the params do not name one already.
fn with_author(method: &str, mut params: Value, author: Option<&str>) -> Value {
    if let (Some(a), true) = (author, AUTHORED.contains(&method))
        && let Some(obj) = params.as_object_mut()
    {
        obj.entry("author").or_insert_with(|| json!(a));
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn author_only_for_methods_that_take_it() {
        let p = with_author(
            "config.set",
            json!({"path": "a", "value": 1}),
            Some("alice"),
        );
        assert_eq!(p, json!({"path": "a", "value": 1, "author": "alice"}));
        let p = with_author("config.confirm", json!({}), Some("alice"));
        assert_eq!(p, json!({"author": "alice"}));
        for m in ["config.history", "status", "users.list", "backup.create"] {
            assert_eq!(with_author(m, json!({}), Some("alice")), json!({}), "{m}");
        }
    }

    #[test]
    fn no_author_leaves_params_alone() {
        let p = json!({"name": "bob", "password": "x"});
        assert_eq!(with_author("users.add", p.clone(), None), p);
    }

    #[test]
    fn explicit_author_wins() {
        let p = json!({"revision": 3, "author": "carol"});
        assert_eq!(with_author("config.rollback", p.clone(), Some("alice")), p);
    }
}
