//! CPU time and resident memory of a process, read from `/proc/PID/stat`
//! and `/proc/PID/status` for `services.metrics` (the web service's
//! `/metrics`). The supervisor reads them, not the web service, because
//! it knows each service's pid and may read every process's `/proc`.
//! The parsers are plain functions so they are tested without a process.

use alpharen_rpc::services::ServiceMetrics;

use crate::service::ServiceStatus;

/// User plus system CPU time in clock ticks, from the text of
/// `/proc/PID/stat`. The command name (field 2) may hold spaces and
/// parentheses, so the fields are counted from the last `)`: utime and
/// stime are fields 14 and 15 of the line.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// Resident set size in bytes, from the `VmRSS:` line of
/// `/proc/PID/status` (which the kernel prints in kB).
pub fn rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let mut parts = line.split_whitespace();
    let kib: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => kib.checked_mul(1024),
        Some(_) => None,
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a constant of the running system.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// The figures of one service as `services.metrics` answers them.
pub fn service_metrics(st: &ServiceStatus) -> ServiceMetrics {
    let read = |file: &str| {
        st.pid
            .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/{file}")).ok())
    };
    ServiceMetrics {
        name: st.name.clone(),
        kind: st.kind.to_string(),
        state: st.state.to_string(),
        restarts: st.restarts,
        rss_bytes: read("status").as_deref().and_then(rss_bytes),
        cpu_seconds: read("stat")
            .as_deref()
            .and_then(cpu_ticks)
            .map(|t| t as f64 / ticks_per_second()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_counts_fields_after_the_command_name() {
        let stat = "1234 (alpharen) S 1 1234 1234 0 -1 4194560 2161 0 0 0 17 5 0 0 20 0 3 0 123 12345678 900 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(22));
        // A name with spaces and a closing parenthesis does not shift them.
        let odd = "99 (a b) c) R 1 99 99 0 -1 0 0 0 0 0 300 45 0 0 20 0 1 0 5 0 0";
        assert_eq!(cpu_ticks(odd), Some(345));
        assert_eq!(cpu_ticks("99 (short) R 1 2"), None);
        assert_eq!(cpu_ticks("no parenthesis"), None);
        assert_eq!(
            cpu_ticks("1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 5 0"),
            None,
            "a field that is not a number"
        );
    }

    #[test]
    fn rss_is_read_in_kib() {
        let status = "Name:\talpharen\nVmPeak:\t  20000 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(rss_bytes(status), Some(5 * 1024 * 1024));
        assert_eq!(
            rss_bytes("Name:\tkthreadd\nThreads:\t1\n"),
            None,
            "kernel threads have none"
        );
        assert_eq!(rss_bytes("VmRSS:\t12 MB\n"), None);
        assert_eq!(rss_bytes("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let st = ServiceStatus {
            name: "self".into(),
            kind: "builtin",
            state: "running",
            pid: Some(std::process::id()),
            restarts: 2,
            since: 0,
            last_exit: None,
        };
        let m = service_metrics(&st);
        assert_eq!((m.name.as_str(), m.restarts), ("self", 2));
        assert!(m.rss_bytes.is_some_and(|b| b > 0));
        assert!(m.cpu_seconds.is_some_and(|s| s >= 0.0));
        let gone = ServiceStatus { pid: None, ..st };
        let m = service_metrics(&gone);
        assert_eq!((m.rss_bytes, m.cpu_seconds), (None, None));
    }
}
