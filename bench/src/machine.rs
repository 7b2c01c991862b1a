//! What the numbers were measured on: CPU, cores, memory, load, build profile.

use serde::Serialize;
use std::time::{SystemTime, UNIX_EPOCH};

/// The machine and the build, as recorded next to the results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Machine {
    /// CPU model name from `/proc/cpuinfo` (or "unknown").
    pub cpu: String,
    /// Logical CPUs listed in `/proc/cpuinfo`.
    pub logical_cpus: usize,
    /// Threads this process may use.
    pub available_parallelism: usize,
    /// Whether the CPU advertises AES-NI (garbling and OT hashing depend on it).
    pub aes_ni: bool,
    /// The CPU features the garbling kernels dispatch on, those advertised of `aes`, `vaes`,
    /// `avx2`, `avx512f` (from `/proc/cpuinfo`).
    pub cpu_features: Vec<String>,
    /// The AES backend chosen at run time for garbling, evaluation and OT hashing (the native
    /// side; the browser's wasm always runs the bitsliced one).
    pub aes_backend: String,
    /// Total memory in GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// Load averages (1, 5, 15 min) when the run started: other work on a shared machine slows
    /// every number down.
    pub load_at_start: [f64; 3],
    /// Load averages when the run ended.
    pub load_at_end: [f64; 3],
    /// Build profile of this binary ("release" or "debug").
    pub profile: String,
    /// Target architecture.
    pub arch: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The current load averages (zeros where `/proc/loadavg` is missing).
pub fn load_average() -> [f64; 3] {
    let text = read("/proc/loadavg");
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

impl Machine {
    /// Describes this machine now (`load_at_end` equals `load_at_start` until [`Machine::finish`]).
    pub fn describe() -> Machine {
        let cpuinfo = read("/proc/cpuinfo");
        let field = |name: &str| {
            cpuinfo.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
        };
        let cpu = field("model name")
            .or_else(|| field("Model"))
            .unwrap_or_else(|| "unknown".into());
        let logical_cpus = cpuinfo
            .lines()
            .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
            .count();
        let flags = field("flags").unwrap_or_default();
        let has = |name: &str| flags.split_whitespace().any(|x| x == name);
        let aes_ni = has("aes");
        let cpu_features = ["aes", "vaes", "avx2", "avx512f"]
            .into_iter()
            .filter(|f| has(f))
            .map(String::from)
            .collect();
        let memory_gib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / (1024.0 * 1024.0));
        let load = load_average();
        Machine {
            cpu,
            logical_cpus,
            available_parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
            aes_ni,
            cpu_features,
            aes_backend: format!("{:?}", cryptonas_crypto::AesBackend::detected()),
            memory_gib,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            load_at_start: load,
            load_at_end: load,
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .into(),
            arch: std::env::consts::ARCH.into(),
        }
    }

    /// Records the load at the end of the run.
    pub fn finish(&mut self) {
        self.load_at_end = load_average();
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for a Unix time (proleptic Gregorian calendar).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// The current time as [`utc`] writes it.
pub fn now_utc() -> String {
    utc(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_000_000), "2026-11-18 11:06:40 UTC");
    }

    #[test]
    fn describes_this_machine() {
        let m = Machine::describe();
        assert!(m.available_parallelism >= 1);
        if std::path::Path::new("/proc/cpuinfo").exists() {
            assert!(m.logical_cpus >= 1, "{m:?}");
            assert!(m.memory_gib > 0.0, "{m:?}");
        }
    }
}
