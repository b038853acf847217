//! Commit-confirm: a risky revision stays in effect only if `config confirm`
//! arrives before its deadline; otherwise the fallback revision is restored.
//! The deadline lives in the store (wall time), so a supervisor restart
//! keeps counting instead of forgetting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alpharen_store::{Config, Store, now_unix};
use tokio::sync::Notify;

use crate::state::NodeState;

/// Time left before `deadline` (Unix seconds) at `now`.
pub fn remaining(deadline: i64, now: i64) -> Duration {
    Duration::from_secs(deadline.saturating_sub(now).max(0) as u64)
}

/// Waits until a pending revision passes its deadline unconfirmed, then
/// reverts it and returns the configurations before and after. Any change
/// to the pending state (confirm, new apply) must wake `changed`.
pub async fn wait_and_revert(store: &Mutex<Store>, changed: &Notify) -> (Config, Config, String) {
    loop {
        let pending = store.lock().ok().and_then(|s| s.pending().ok().flatten());
        let Some(p) = pending else {
            changed.notified().await;
            continue;
        };
        tokio::select! {
            _ = tokio::time::sleep(remaining(p.deadline, now_unix())) => {}
            _ = changed.notified() => continue,
        }
        let Ok(mut s) = store.lock() else { continue };
        // Confirmed or replaced while we slept: start over.
        if s.pending().ok().flatten() != Some(p) {
            continue;
        }
        let Ok(before) = s.current_config() else {
            continue;
        };
        match s.revert_pending("alpharen") {
            Ok(out) => {
                let after = s.current_config().unwrap_or_else(|_| before.clone());
                let what = format!(
                    "revision {} was not confirmed within the timeout; reverted to revision {} (now revision {})",
                    p.revision,
                    p.fallback,
                    out.revision.map_or(0, |r| r.id)
                );
                return (before, after, what);
            }
            Err(_) => continue,
        }
    }
}

pub async fn run(node: Arc<NodeState>) {
    loop {
        let (before, after, what) = wait_and_revert(&node.store, &node.pending_changed).await;
        node.logs.event(&what);
        node.notify("configuration reverted", &what);
        let changed = before.changed_sections(&after);
        node.reconcile(&before, &after, &changed).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_pending(timeout: u64) -> (tempfile::TempDir, Mutex<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let mut c = Config::default();
        c.node.confirm_timeout = timeout;
        s.apply(&c, "t", "base").unwrap();
        c.network.manage = Some(true);
        assert!(s.apply(&c, "t", "risky").unwrap().pending.is_some());
        (dir, Mutex::new(s))
    }

    /// Lets (paused) time pass, failing if the revert happens meanwhile.
    async fn no_revert_for<F: std::future::Future + Unpin>(task: &mut F, secs: u64) {
        tokio::select! {
            _ = task => panic!("reverted within {secs} s"),
            _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unconfirmed_risky_change_is_reverted_after_the_timeout() {
        let (_d, store) = store_with_pending(120);
        let changed = Notify::new();
        let task = wait_and_revert(&store, &changed);
        tokio::pin!(task);
        no_revert_for(&mut task, 118).await;
        let (before, after, _) = task.await;
        assert_eq!(before.network.manage, Some(true));
        assert_eq!(after.network.manage, None);
        let s = store.lock().unwrap();
        assert!(s.pending().unwrap().is_none());
        assert_eq!(s.history(10).unwrap().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn confirmed_change_is_kept() {
        let (_d, store) = store_with_pending(120);
        let changed = Notify::new();
        let task = wait_and_revert(&store, &changed);
        tokio::pin!(task);
        no_revert_for(&mut task, 60).await;
        {
            let mut s = store.lock().unwrap();
            let p = s.pending().unwrap().unwrap();
            s.confirm(p.revision, "t").unwrap();
        }
        changed.notify_one();
        no_revert_for(&mut task, 600).await;
        assert_eq!(store.lock().unwrap().history(10).unwrap().len(), 2);
    }

    #[test]
    fn remaining_never_goes_negative() {
        assert_eq!(remaining(100, 40), Duration::from_secs(60));
        assert_eq!(remaining(100, 140), Duration::ZERO);
    }
}
