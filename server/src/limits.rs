//! Per-server and per-client limits.

use crate::AppError;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits enforced by the transport.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Sessions at once.
    pub max_sessions: usize,
    /// Largest frame accepted from a client.
    pub max_frame_bytes: usize,
    /// Close a session after this long without a client frame.
    pub idle_timeout: Duration,
    /// Sessions per client address per minute.
    pub sessions_per_minute: u32,
    /// Largest per-session memory (the model's estimate) the server admits; a model that needs
    /// more is listed but its sessions are refused.
    pub max_session_memory: u64,
    /// Memory all running sessions may hold together (sum of their estimates); sessions beyond
    /// it are refused with 503 until others finish.
    pub memory_budget: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 64,
            max_frame_bytes: 64 << 20,
            idle_timeout: Duration::from_secs(120),
            sessions_per_minute: 60,
            max_session_memory: 2 << 30,
            memory_budget: 8 << 30,
        }
    }
}

/// A token bucket per client address: `per_minute` sessions, refilled continuously.
///
/// Semi-honest security does not stop a malicious client from extracting weights with many queries
/// (MUSE, USENIX Security 2021); rate limits are the practical mitigation.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` sessions per address (0 disables the limit).
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `ip`, or says no.
    pub fn check(&self, ip: IpAddr) -> Result<(), AppError> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().map_err(|_| AppError::Internal)?;
        if buckets.len() > 100_000 {
            // Bound memory: forget addresses whose bucket is full again.
            buckets.retain(|_, (_, t)| now.duration_since(*t) < Duration::from_secs(60));
        }
        let (tokens, last) = buckets.entry(ip).or_insert((capacity, now));
        let refill = now.duration_since(*last).as_secs_f64() * capacity / 60.0;
        *tokens = (*tokens + refill).min(capacity);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(AppError::RateLimited)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refuses_after_capacity() {
        let r = RateLimiter::new(3);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            r.check(ip).unwrap();
        }
        assert!(matches!(r.check(ip), Err(AppError::RateLimited)));
        r.check(other).unwrap();
        assert!(RateLimiter::new(0).check(ip).is_ok());
    }
}
