//! Which clock a time budget counts: wall time, or the CPU time of this process.
//!
//! On a shared machine a low-priority run gets whatever CPU the others leave, so a wall-clock
//! budget buys an unknown amount of training; the process's CPU time (user + system, all its
//! threads) is the compute actually spent, and two runs with equal CPU budgets got equal compute
//! whatever else ran beside them. Read from `/proc/self/stat` (Linux), in clock ticks of
//! `USER_HZ` = 100 per second, the value Linux fixes for user space on every architecture.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::SearchError;

/// The clock a time budget counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Clock {
    /// Wall-clock seconds.
    #[default]
    Wall,
    /// CPU seconds of this process (user + system, all threads; Linux only).
    Cpu,
}

impl Clock {
    /// Unit name for reports ("s" or "CPU s").
    pub fn unit(self) -> &'static str {
        match self {
            Clock::Wall => "s",
            Clock::Cpu => "CPU s",
        }
    }
}

/// Clock ticks per second of `/proc/<pid>/stat`'s times (`USER_HZ`).
const USER_HZ: f64 = 100.0;

/// User + system CPU seconds of `stat`, the text of `/proc/<pid>/stat`.
pub fn parse_proc_stat_cpu(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces or ')': fields 3… follow
    // the last ')'. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// CPU seconds this process has used so far.
pub fn process_cpu_seconds() -> Result<f64, SearchError> {
    let path = "/proc/self/stat";
    let text = std::fs::read_to_string(path).map_err(|e| SearchError::io(path, e))?;
    parse_proc_stat_cpu(&text).ok_or_else(|| SearchError::Invalid {
        what: format!("{path}: no utime/stime fields"),
    })
}

/// Time elapsed on a [`Clock`] since [`Stopwatch::start`].
#[derive(Clone, Debug)]
pub struct Stopwatch {
    clock: Clock,
    wall: Instant,
    cpu0: f64,
}

impl Stopwatch {
    /// Starts measuring; fails for [`Clock::Cpu`] where the process's CPU time is unreadable.
    pub fn start(clock: Clock) -> Result<Stopwatch, SearchError> {
        let cpu0 = match clock {
            Clock::Wall => 0.0,
            Clock::Cpu => process_cpu_seconds()?,
        };
        Ok(Stopwatch {
            clock,
            wall: Instant::now(),
            cpu0,
        })
    }

    /// Seconds elapsed on the clock. Should `/proc/self/stat` become unreadable after the start
    /// succeeded, CPU time falls back to the wall time, which is never less for a process that
    /// runs one thread.
    pub fn elapsed(&self) -> f64 {
        let wall = self.wall.elapsed().as_secs_f64();
        match self.clock {
            Clock::Wall => wall,
            Clock::Cpu => process_cpu_seconds().map_or(wall, |c| (c - self.cpu0).max(0.0)),
        }
    }

    /// Wall seconds elapsed (throughput figures).
    pub fn wall(&self) -> f64 {
        self.wall.elapsed().as_secs_f64()
    }

    /// The clock it counts.
    pub fn clock(&self) -> Clock {
        self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_odd_names() {
        let line = "22305 (cat) R 22302 22302 6016 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_proc_stat_cpu(line), Some(3.0));
        // A command name with spaces and a closing parenthesis.
        let odd = "7 (a) b) c) S 1 1 1 0 -1 0 0 0 0 0 1234 66 0 0 20 0 1 0";
        assert_eq!(parse_proc_stat_cpu(odd), Some(13.0));
        assert_eq!(parse_proc_stat_cpu("7 (x) S 1 2"), None);
        assert_eq!(parse_proc_stat_cpu("garbage"), None);
    }
}
