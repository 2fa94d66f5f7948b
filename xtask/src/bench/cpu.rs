//! CPU time of the processes a figure measures, from `/proc`.
//!
//! Each `workerd` the benchmark starts leads its own process group
//! (`proc::Service`), so a group holds the runtime and any process it
//! forks. The time is the sum over their threads of
//! `/proc/<pid>/task/<tid>/schedstat`'s first field: nanoseconds on a CPU,
//! finer than `stat`'s utime and stime in clock ticks (10 ms here, more
//! than one request costs).

use anyhow::{Context, Result};
use std::path::Path;

/// CPU time used so far by every thread of the `workerd` processes of
/// process group `group`, in nanoseconds.
pub(super) fn workerd_cpu_ns(group: u32) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let dir = entry?.path();
        // Other entries (self, sys, ...) and processes that ended meanwhile
        // have no readable stat; neither is ours.
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        if in_group(&stat, "workerd", group) {
            total += threads_cpu_ns(&dir)?;
        }
    }
    Ok(total)
}

/// Whether a `/proc/<pid>/stat` line is of command `comm` in group `group`.
fn in_group(stat: &str, comm: &str, group: u32) -> bool {
    // `pid (comm) state ppid pgrp ...`: comm may hold spaces and
    // parentheses, so the fields start after its last closing parenthesis.
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let mut fields = stat[close + 1..].split_whitespace();
    let pgrp = fields.nth(2).and_then(|f| f.parse::<u32>().ok());
    &stat[open + 1..close] == comm && pgrp == Some(group)
}

fn threads_cpu_ns(process: &Path) -> Result<u64> {
    let mut total = 0;
    let Ok(tasks) = std::fs::read_dir(process.join("task")) else {
        return Ok(0);
    };
    for task in tasks {
        // A thread that ended meanwhile has no file any more; its time is
        // lost to both sides of a difference alike.
        let Ok(schedstat) = std::fs::read_to_string(task?.path().join("schedstat")) else {
            continue;
        };
        total += schedstat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .context("an unexpected schedstat line")?;
    }
    Ok(total)
}

/// CPU time used so far by process `root` and every process descended from
/// it, in nanoseconds: a server and the workers it forks (Postgres' backends
/// leave the postmaster's process group, but stay its children). A child
/// that ended counts too, through its parent's `cutime` and `cstime`:
/// Postgres' autovacuum workers come and go during a run, and without them
/// the sum could even shrink.
pub(super) fn tree_cpu_ns(root: u32) -> Result<u64> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let dir = entry?.path();
        let Some(pid) = dir
            .file_name()
            .and_then(|n| n.to_str()?.parse::<u32>().ok())
        else {
            continue;
        };
        // A process that ended meanwhile has no stat any more.
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        if let Some(ppid) = parent(&stat) {
            parents.push((pid, ppid));
        }
    }
    let mut total = 0;
    for &(pid, _) in &parents {
        if descends_from(pid, root, &parents) {
            let dir = Path::new("/proc").join(pid.to_string());
            total += threads_cpu_ns(&dir)?;
            // Gone meanwhile: its own time is lost to both reads alike.
            if let Ok(stat) = std::fs::read_to_string(dir.join("stat")) {
                total += ended_children_ns(&stat).unwrap_or(0);
            }
        }
    }
    Ok(total)
}

/// The parent pid of a `/proc/<pid>/stat` line.
fn parent(stat: &str) -> Option<u32> {
    let close = stat.rfind(')')?;
    stat[close + 1..].split_whitespace().nth(1)?.parse().ok()
}

fn descends_from(pid: u32, root: u32, parents: &[(u32, u32)]) -> bool {
    let mut at = pid;
    // A chain is never longer than the table; the bound stops a cycle that
    // reused pids could make between two reads.
    for _ in 0..=parents.len() {
        if at == root {
            return true;
        }
        match parents.iter().find(|(p, _)| *p == at) {
            Some(&(_, ppid)) if ppid != 0 => at = ppid,
            _ => return false,
        }
    }
    false
}

/// CPU time used so far by this process's children that have ended and been
/// waited for (a load generator's run), in nanoseconds.
pub(super) fn ended_children_cpu_ns() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    ended_children_ns(&stat).context("an unexpected /proc/self/stat")
}

/// A `/proc/<pid>/stat` line's `cutime` plus `cstime`: the CPU time of the
/// process's children that ended and were waited for, in nanoseconds.
fn ended_children_ns(stat: &str) -> Option<u64> {
    let close = stat.rfind(')')?;
    // Fields after comm start at 3 (state); cutime and cstime are 16 and 17,
    // in USER_HZ ticks, which Linux fixes at 100 per second for `/proc`.
    let mut fields = stat[close + 1..].split_whitespace().skip(13);
    let user = fields.next()?.parse::<u64>().ok()?;
    let system = fields.next()?.parse::<u64>().ok()?;
    Some((user + system) * 10_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_names_its_command_and_group() {
        let line = "4242 (workerd) S 1 4240 4240 0 -1 4194560 100 0 0 0 7 3 0 0 20 0";
        assert!(in_group(line, "workerd", 4240));
        assert!(!in_group(line, "workerd", 4242));
        assert!(!in_group(line, "node", 4240));
        let odd = "77 (a) b) (c) R 1 9 9 0";
        assert!(in_group(odd, "a) b) (c", 9));
        assert!(!in_group("garbage", "workerd", 9));
    }

    #[test]
    fn a_process_tree_is_followed_through_parents() {
        let parents = [(1, 0), (10, 1), (11, 10), (12, 11), (20, 1)];
        assert!(descends_from(12, 10, &parents));
        assert!(descends_from(10, 10, &parents));
        assert!(!descends_from(20, 10, &parents));
        assert!(!descends_from(99, 10, &parents));
        assert_eq!(parent("4242 (a) b) S 17 4240 4240"), Some(17));
        let line = "9 (postgres) S 1 9 9 0 -1 4194560 100 0 0 0 7 3 250 40 20 0";
        assert_eq!(ended_children_ns(line), Some(290 * 10_000_000));
        assert_eq!(ended_children_ns("9 (postgres) S 1 9"), None);
    }

    #[test]
    fn this_process_tree_has_spent_some_cpu() {
        assert!(tree_cpu_ns(std::process::id()).unwrap() > 0);
        let waited = std::process::Command::new("true").status().unwrap();
        assert!(waited.success());
        ended_children_cpu_ns().unwrap();
    }

    #[test]
    fn this_process_has_spent_some_cpu() {
        let me = Path::new("/proc/self");
        assert!(threads_cpu_ns(me).unwrap() > 0);
    }
}
