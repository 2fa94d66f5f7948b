//! CPU time of the `workerd` processes a figure measures, from `/proc`.
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
    fn this_process_has_spent_some_cpu() {
        let me = Path::new("/proc/self");
        assert!(threads_cpu_ns(me).unwrap() > 0);
    }
}
