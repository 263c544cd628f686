//! CPU time from `/proc`: of a process tree, and of one process's threads
//! by kind, so that a bench can say where a checkout's CPU went.

use std::collections::BTreeMap;

/// Seconds per clock tick of `/proc`'s times.
fn tick() -> f64 {
    #[allow(unsafe_code)]
    // SAFETY: sysconf reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    1.0 / ticks
}

/// utime + stime of a `stat` file's text, in seconds.
fn stat_seconds(stat: &str) -> Option<f64> {
    // Fields after the command name (which may hold spaces) start at `) `.
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * tick())
}

/// utime + stime of a process and, recursively, its children, in seconds.
pub fn process_tree(pid: u32) -> f64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| stat_seconds(&s)).unwrap_or(0.0);
    let children: f64 = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()).collect::<Vec<_>>())
        .map(process_tree)
        .sum();
    own + children
}

/// The kind of a thread, by its name: `sqlite` (sqlx's worker thread of a
/// SQLite connection, which runs every statement), `runtime` (tokio's
/// workers: services, workers, gateway), or `other`.
fn kind(comm: &str) -> &'static str {
    if comm.starts_with("sqlx-sqlite") {
        "sqlite"
    } else if comm.starts_with("tokio") || comm.starts_with("chorus") {
        "runtime"
    } else {
        "other"
    }
}

/// CPU seconds so far of `pid`'s threads, summed by [`kind`]. (A thread
/// that ended took its time with it; the totals are for comparing two
/// readings of a long-running process.)
pub fn threads_by_kind(pid: u32) -> BTreeMap<&'static str, f64> {
    let mut out = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let seconds = std::fs::read_to_string(task.path().join("stat")).ok().and_then(|s| stat_seconds(&s)).unwrap_or(0.0);
        *out.entry(kind(comm.trim())).or_insert(0.0) += seconds;
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn this_process_cpu_time_is_read_from_proc() {
        let busy = Instant::now();
        while busy.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(0u64);
        }
        assert!(process_tree(std::process::id()) > 0.0);
        let threads = threads_by_kind(std::process::id());
        assert!(threads.values().sum::<f64>() > 0.0, "{threads:?}");
    }

    #[test]
    fn threads_are_told_apart_by_name() {
        assert_eq!(kind("sqlx-sqlite-wor"), "sqlite");
        assert_eq!(kind("tokio-rt-worker"), "runtime");
        assert_eq!(kind("chorus"), "runtime");
        assert_eq!(kind("jemalloc_bg_thd"), "other");
    }
}
