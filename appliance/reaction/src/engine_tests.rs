//! The engine's answers for unknown objects (404) and for known objects in
//! the wrong state (409), on a real reaction.db.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use alpharen_store::config::Config;

use crate::db::DbError;
use crate::engine::{Node, Settings};

pub fn node_with(dir: &Path, toml: &str) -> Arc<Node> {
    let conf = Config::from_toml(toml).unwrap();
    let settings = Settings {
        reaction: conf.reaction,
        keys: HashMap::new(),
        smtp_port: 1,
        hostname: "n1".into(),
        tz: alpharen_store::config::Zone::Fixed(0),
    };
    let db = crate::db::Db::open(dir).unwrap();
    Arc::new(Node::new(dir.to_path_buf(), db, settings).unwrap())
}

pub const ONE_COMMAND: &str = "[[reaction.agents]]\nname = \"h\"\n[[reaction.flows]]\nname = \"f\"\n[[reaction.flows.tasks]]\nname = \"c\"\nkind = \"command\"\nhost = \"h\"\ncommand = \"true\"\n[[reaction.flows.tasks]]\nname = \"d\"\nkind = \"command\"\nhost = \"h\"\ncommand = \"true\"\n";

fn is_not_found<T: std::fmt::Debug>(r: Result<T, DbError>) -> bool {
    matches!(r, Err(DbError::NotFound(_)))
}

#[tokio::test]
async fn unknown_runs_tasks_incidents_and_flows_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(dir.path(), ONE_COMMAND);
    assert!(is_not_found(node.start("nope").await));
    assert!(is_not_found(node.decide(42, true).await));
    assert!(is_not_found(node.decide(42, false).await));
    assert!(is_not_found(node.retry_or_skip(42, "c", true).await));
    let run = node.start("f").await.unwrap();
    // A task the run's flow does not have: 404; one it has but that is
    // not the current step: 409.
    assert!(is_not_found(node.retry_or_skip(run, "zz", false).await));
    assert!(matches!(
        node.retry_or_skip(run, "d", true).await,
        Err(DbError::State(_))
    ));
    // An executor's result for a step that does not exist: 404; for a
    // step it does not hold the lease of: not taken (409).
    assert!(is_not_found(node.result(run, 9, "t", 0, "", false).await));
    assert!(is_not_found(node.result(77, 1, "t", 0, "", false).await));
    assert!(!node.result(run, 1, "t", 0, "", false).await.unwrap());
}
