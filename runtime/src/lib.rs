//! Sluice runtime: everything Sluice does, behind a library API the `sluice` binary drives.
//! Data flows one way: `spec` (parse) -> `plan` (graph, no IO) -> `schedule` (tokio)
//! -> `exec` (wasm) -> `store` (artifacts and run records). See `ARCHITECTURE.md`.

pub mod argo;
pub mod compose;
pub mod deploy;
pub mod error;
pub mod events;
pub mod exec;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod kfp;
pub mod launcher;
pub mod maintenance;
pub mod models;
pub mod oci;
pub mod plan;
pub mod schedule;
pub mod serve;
pub mod session;
pub mod slurm;
pub mod spec;
pub mod store;
pub mod table;
mod wasm;

/// An error and its sources on one line, joined by `: `.
/// `n` and `noun`, the noun plural (with an `s`) unless `n` is one: `count(1, "task")`
/// is `1 task`, `count(3, "task")` is `3 tasks`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// Makes rustls' `ring` provider the process's TLS crypto; every HTTP client (registry
/// pulls, admin requests) needs one. Idempotent.
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Raises the process's soft limit on open descriptors (`RLIMIT_NOFILE`) to its hard
/// limit, as long-running servers and build tools do: wasm tasks side by side, each
/// allowed its own `resources.open_files`, and containers' log streams share it, and the
/// usual soft limit of 1024 is below what they may hold together. Returns the limit now
/// in force, `None` when it cannot be read.
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum
        && limit.current.is_some_and(|soft| soft < hard)
    {
        limit.current = Some(hard);
        if setrlimit(Resource::Nofile, limit).is_err() {
            return getrlimit(Resource::Nofile).current;
        }
    }
    limit.current.or(limit.maximum)
}

/// Whether the process that recorded something as `pid` at `since` still runs. With
/// `start_ticks`, that process's start as it recorded it ([`process_start_ticks`]): a
/// process with that id that started then (another with its id, in another PID
/// namespace or after it ended, started at another tick). Without it, a process with
/// that id that started no later than `since` (one that started later reuses the id of
/// one that ended); without `since` either, whether the id is in use.
pub(crate) fn process_alive(
    pid: u32,
    since: Option<jiff::Timestamp>,
    start_ticks: Option<u64>,
) -> bool {
    if let Some(recorded) = start_ticks {
        return process_start_ticks(pid) == Some(recorded);
    }
    if pid == std::process::id() {
        return true;
    }
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return false;
    }
    match (since, process_started_at(pid)) {
        // A second of slack: the record's time and the kernel's clock ticks round apart.
        (Some(since), Some(started)) => started <= since + jiff::SignedDuration::from_secs(1),
        _ => true,
    }
}

/// When a process started, in clock ticks after boot (`starttime` of `/proc/<pid>/stat`):
/// fixed for the process's life, unlike the boot time, which clock adjustments move.
pub(crate) fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, field 2, is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// When a process started, from its start ticks and `/proc/stat` (the boot time).
fn process_started_at(pid: u32) -> Option<jiff::Timestamp> {
    let ticks = process_start_ticks(pid)?;
    let boot: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let per_second = rustix::param::clock_ticks_per_second();
    let nanos = i128::from(ticks) * 1_000_000_000 / i128::from(per_second.max(1));
    jiff::Timestamp::from_nanosecond(i128::from(boot) * 1_000_000_000 + nanos).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_counts_as_alive_only_if_it_started_before_the_record() {
        let now = jiff::Timestamp::now();
        // pid 1 has run since boot: alive for a record made now, not for one made
        // before it started (that pid would have been another process's).
        assert!(process_alive(1, Some(now), None));
        assert!(!process_alive(1, Some(jiff::Timestamp::UNIX_EPOCH), None));
        assert!(process_alive(1, None, None));
        assert!(process_started_at(1).is_some_and(|t| t <= now));
        // A pid nothing uses.
        assert!(!process_alive(u32::MAX - 7, None, None));
    }

    /// A record that says when its process started names that process alone: the same id
    /// with another start (pid 1 of another PID namespace, an id reused) is not it.
    #[test]
    fn a_process_recorded_with_its_start_is_told_from_another_with_its_id() {
        let own = std::process::id();
        let ticks = process_start_ticks(own).unwrap();
        assert!(process_alive(own, None, Some(ticks)));
        assert!(!process_alive(
            own,
            Some(jiff::Timestamp::now()),
            Some(ticks + 1)
        ));
        let first = process_start_ticks(1).unwrap();
        assert!(process_alive(1, None, Some(first)));
        // pid 1 that started when this process did is another pid 1 (a container's).
        assert!(!process_alive(1, Some(jiff::Timestamp::now()), Some(ticks)));
    }
}
