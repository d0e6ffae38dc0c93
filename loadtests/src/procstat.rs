//! CPU time and resident memory of a process, read from `/proc`, for reporting what
//! the server spent while clients followed it.

use std::time::Instant;

/// One reading of a process.
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    pub at: Instant,
    /// User plus system CPU time, in seconds.
    pub cpu_secs: f64,
    pub rss_kib: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`; `None` once the process is gone.
pub fn read(pid: u32) -> Option<Reading> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Reading {
        at: Instant::now(),
        cpu_secs: cpu_secs(&stat)?,
        rss_kib: rss_kib(&status)?,
    })
}

/// Fields 14 and 15 (utime, stime) count clock ticks; the command name in field 2 may
/// hold spaces, so fields are counted after its closing parenthesis.
fn cpu_secs(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_sec())
}

fn rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Linux reports CPU times in USER_HZ, which is 100 on every architecture it runs on.
fn ticks_per_sec() -> f64 {
    100.0
}

/// CPU use between two readings, in cores (1.0 is one core busy all the time).
pub fn cores_between(first: &Reading, last: &Reading) -> f64 {
    let wall = last.at.duration_since(first.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    (last.cpu_secs - first.cpu_secs) / wall
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = read(std::process::id()).expect("own /proc entry");
        assert!(me.rss_kib > 0);
        assert!(me.cpu_secs >= 0.0);
    }

    #[test]
    fn command_names_with_spaces_do_not_shift_fields() {
        let stat = "42 (a b) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0";
        assert_eq!(cpu_secs(stat), Some(3.0));
    }
}
