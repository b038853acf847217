//! `system.reboot.schedule` / `system.reboot.scheduled`: a reboot at a
//! local time, so an installed update is tried in a maintenance window.
//! One schedule at a time, in memory (a reboot or restart forgets it).

use std::sync::Arc;
use std::time::Duration;

use alpharen_rpc::system::{self, RebootSchedule, ScheduleReboot};
use alpharen_rpc::{Call, Reply, RpcError};
use alpharen_store::config::{Zone, parse_tz};
use alpharen_store::now_unix;
use serde_json::json;

use super::unknown;
use crate::state::NodeState;

/// The Unix time of the next `minutes` past local midnight in `zone`,
/// strictly after `now`: today's if it is still ahead, else tomorrow's.
pub fn next_time(now: i64, zone: &Zone, minutes: u32) -> i64 {
    let local_now = now + zone.offset_at(now);
    let midnight = local_now - local_now.rem_euclid(86_400);
    let at = |day: i64| zone.to_utc(midnight + day * 86_400 + i64::from(minutes) * 60);
    let today = at(0);
    if today > now { today } else { at(1) }
}

pub async fn call(node: &Arc<NodeState>, call: Call) -> Result<Reply, RpcError> {
    let value = match call.method.as_str() {
        system::REBOOT_SCHEDULED => json!(scheduled(node)),
        system::REBOOT_SCHEDULE => {
            let p: ScheduleReboot = call.params()?;
            json!(schedule(node, p)?)
        }
        _ => return Err(unknown(&call)),
    };
    Ok(Reply::Value(value))
}

fn scheduled(node: &NodeState) -> RebootSchedule {
    let held = node.reboot_at.lock().unwrap_or_else(|e| e.into_inner());
    RebootSchedule {
        at: held.as_ref().map(|(at, _)| *at),
    }
}

fn schedule(node: &Arc<NodeState>, p: ScheduleReboot) -> Result<RebootSchedule, RpcError> {
    let bad = |m: String| RpcError::new("invalid_params", m);
    let minutes = match (&p.at, p.cancel) {
        (Some(_), true) => return Err(bad("give either at or cancel, not both".into())),
        (None, false) => return Err(bad("give at (\"HH:MM\") or cancel".into())),
        (None, true) => None,
        (Some(at), false) => Some(system::parse_time_of_day(at).ok_or_else(|| {
            bad(format!(
                "at: {at:?} is not a time of day HH:MM (00:00 to 23:59)"
            ))
        })?),
    };
    if minutes.is_some()
        && !node.opts.under_init
        && std::env::var_os(crate::install::TARGET_ENV).is_none()
    {
        return Err(RpcError::new(
            "not_supported",
            "this supervisor is not the node's init (development mode), so it cannot reboot",
        ));
    }
    let mut held = node.reboot_at.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, task)) = held.take() {
        task.abort();
        node.logs
            .event(&format!("reboot scheduled for {} cancelled", stamp(at)));
    }
    let Some(minutes) = minutes else {
        return Ok(RebootSchedule { at: None });
    };
    let tz = node.config().node.timezone;
    let zone = parse_tz(&tz).unwrap_or(Zone::Fixed(0));
    let now = now_unix();
    let at = next_time(now, &zone, minutes);
    let wait = Duration::from_secs(u64::try_from(at - now).unwrap_or(0));
    let me = node.clone();
    let task = tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        me.logs.event("rebooting as scheduled");
        if !me.opts.under_init {
            me.logs
                .event("development mode: not rebooting (the schedule was only a test)");
        } else if let Err(e) = crate::state::request_reboot() {
            me.logs.event(&format!("cannot reboot: {e}"));
        }
        let mut held = me.reboot_at.lock().unwrap_or_else(|e| e.into_inner());
        held.take();
    });
    *held = Some((at, task.abort_handle()));
    node.logs
        .event(&format!("reboot scheduled for {} ({tz})", stamp(at)));
    Ok(RebootSchedule { at: Some(at) })
}

/// A Unix time as `YYYY-MM-DD HH:MM UTC`, for the log.
fn stamp(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-03 15:00:00 UTC.
    const NOW: i64 = 1_796_310_000;

    #[test]
    fn the_next_time_is_today_if_ahead_else_tomorrow() {
        let utc = Zone::Fixed(0);
        assert_eq!(next_time(NOW, &utc, 16 * 60), NOW + 3600);
        assert_eq!(next_time(NOW, &utc, 14 * 60), NOW + 23 * 3600);
        // Exactly now: tomorrow, never a reboot in the past.
        assert_eq!(next_time(NOW, &utc, 15 * 60), NOW + 86_400);
        // 15:00 UTC is 16:00 in Berlin (winter): 03:00 there is 02:00 UTC.
        let berlin = parse_tz("Europe/Berlin").unwrap_or(Zone::Fixed(0));
        assert_eq!(next_time(NOW, &berlin, 3 * 60), NOW + 11 * 3600);
        // Across the local midnight: 23:30 UTC is 00:30 in Berlin.
        let late = NOW + 8 * 3600 + 1800;
        assert_eq!(next_time(late, &berlin, 3 * 60), NOW + 11 * 3600);
        let east = Zone::Fixed(-5 * 3600);
        assert_eq!(next_time(NOW, &east, 10 * 60 + 30), NOW + 1800);
    }

    #[test]
    fn a_reboot_in_the_spring_gap_happens_just_after_the_jump() {
        // 2027-03-28: Berlin jumps from 02:00 to 03:00 (01:00 UTC).
        let berlin = parse_tz("Europe/Berlin").unwrap_or(Zone::Fixed(0));
        let evening = 1_806_177_600; // 2027-03-27 20:00 UTC
        let at = next_time(evening, &berlin, 2 * 60 + 30);
        assert_eq!(at, 1_806_195_600 + 1800);
    }
}
