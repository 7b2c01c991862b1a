//! Counters for `GET /metrics` in the Prometheus text exposition format (version 0.0.4), written
//! by hand: a few atomics need no metrics framework.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Refusal reasons, in exposition order (see [`crate::AppError::reason`]).
const REASONS: [&str; 12] = [
    "unknown_model",
    "sessions_busy",
    "never_fits",
    "memory_busy",
    "rate",
    "address_busy",
    "plain_disabled",
    "origin",
    "draining",
    "too_large",
    "bad_request",
    "internal",
];

/// How a session ended, in exposition order (see [`crate::ws::PumpError::kind`]).
pub(crate) const ENDS: [&str; 5] = ["ok", "protocol", "timeout", "disconnect", "internal"];

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    started: AtomicU64,
    active: AtomicU64,
    ended: [AtomicU64; ENDS.len()],
    refused: [AtomicU64; REASONS.len()],
    plain: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    memory_admitted: AtomicU64,
    /// (sum of seconds, count) of the offline and online phases of finished sessions.
    phases: Mutex<[(f64, u64); 2]>,
}

impl Metrics {
    pub(crate) fn session_started(&self, memory: u64) {
        self.started.fetch_add(1, Relaxed);
        self.active.fetch_add(1, Relaxed);
        self.memory_admitted.fetch_add(memory, Relaxed);
    }

    pub(crate) fn session_ended(&self, memory: u64, end: &'static str, bytes: (u64, u64)) {
        self.active.fetch_sub(1, Relaxed);
        self.memory_admitted.fetch_sub(memory, Relaxed);
        if let Some(i) = ENDS.iter().position(|e| *e == end) {
            self.ended[i].fetch_add(1, Relaxed);
        }
        self.bytes_in.fetch_add(bytes.0, Relaxed);
        self.bytes_out.fetch_add(bytes.1, Relaxed);
    }

    pub(crate) fn phase(&self, online: bool, took: Duration) {
        if let Ok(mut p) = self.phases.lock() {
            let p = &mut p[usize::from(online)];
            p.0 += took.as_secs_f64();
            p.1 += 1;
        }
    }

    pub(crate) fn refused(&self, reason: &'static str) {
        if let Some(i) = REASONS.iter().position(|r| *r == reason) {
            self.refused[i].fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn plain_answered(&self) {
        self.plain.fetch_add(1, Relaxed);
    }

    /// Sessions running now.
    pub fn active(&self) -> u64 {
        self.active.load(Relaxed)
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let section = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        section(
            &mut out,
            "cryptonas_sessions_started_total",
            "counter",
            "Sessions admitted.",
        );
        let _ = writeln!(
            out,
            "cryptonas_sessions_started_total {}",
            self.started.load(Relaxed)
        );
        section(
            &mut out,
            "cryptonas_sessions_active",
            "gauge",
            "Sessions running now.",
        );
        let _ = writeln!(out, "cryptonas_sessions_active {}", self.active());
        section(
            &mut out,
            "cryptonas_sessions_ended_total",
            "counter",
            "Sessions ended, by outcome.",
        );
        for (e, c) in ENDS.iter().zip(&self.ended) {
            let _ = writeln!(
                out,
                "cryptonas_sessions_ended_total{{outcome=\"{e}\"}} {}",
                c.load(Relaxed)
            );
        }
        section(
            &mut out,
            "cryptonas_refused_total",
            "counter",
            "Requests refused, by reason.",
        );
        for (r, c) in REASONS.iter().zip(&self.refused) {
            let _ = writeln!(
                out,
                "cryptonas_refused_total{{reason=\"{r}\"}} {}",
                c.load(Relaxed)
            );
        }
        section(
            &mut out,
            "cryptonas_plain_answers_total",
            "counter",
            "Plaintext classifications answered.",
        );
        let _ = writeln!(
            out,
            "cryptonas_plain_answers_total {}",
            self.plain.load(Relaxed)
        );
        section(
            &mut out,
            "cryptonas_session_bytes_total",
            "counter",
            "WebSocket payload bytes of ended sessions, by direction.",
        );
        let _ = writeln!(
            out,
            "cryptonas_session_bytes_total{{direction=\"in\"}} {}\n\
             cryptonas_session_bytes_total{{direction=\"out\"}} {}",
            self.bytes_in.load(Relaxed),
            self.bytes_out.load(Relaxed)
        );
        section(
            &mut out,
            "cryptonas_memory_admitted_bytes",
            "gauge",
            "Memory admitted to running sessions (estimates plus transport buffers).",
        );
        let _ = writeln!(
            out,
            "cryptonas_memory_admitted_bytes {}",
            self.memory_admitted.load(Relaxed)
        );
        section(
            &mut out,
            "cryptonas_phase_seconds",
            "summary",
            "Duration of completed protocol phases.",
        );
        let phases = self.phases.lock().map(|p| *p).unwrap_or_default();
        for (name, (sum, count)) in ["offline", "online"].iter().zip(phases) {
            let _ = writeln!(
                out,
                "cryptonas_phase_seconds_sum{{phase=\"{name}\"}} {sum}\n\
                 cryptonas_phase_seconds_count{{phase=\"{name}\"}} {count}"
            );
        }
        out
    }
}
