//! Per-server and per-client limits.

use crate::AppError;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Limits enforced by the transport.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Sessions at once.
    pub max_sessions: usize,
    /// Sessions one client address may hold at once.
    pub max_sessions_per_address: usize,
    /// Largest frame accepted from a client in any state (each state accepts at most what the
    /// protocol's plan says it can need, and never more than this).
    pub max_frame_bytes: usize,
    /// Close a session after this long without a client data frame (ping/pong do not count).
    pub idle_timeout: Duration,
    /// Close a session whose client does not take a frame within this long (a stalled reader).
    pub send_timeout: Duration,
    /// The whole offline phase (HE, OT, garbled layers) must end within this long.
    pub offline_deadline: Duration,
    /// The whole online phase must end within this long after the client sent its image.
    pub online_deadline: Duration,
    /// A prepared session (offline phase done, no image yet) is closed after waiting this long;
    /// its memory stays counted in [`Limits::memory_budget`] until then.
    pub prepared_ttl: Duration,
    /// How often a prepared session pings its client: reverse proxies close connections that
    /// carry nothing for a while (nginx's default `proxy_read_timeout` is a minute), and a
    /// prepared session may wait minutes for its image.
    pub keepalive: Duration,
    /// Sessions per client address per minute (plaintext classifications count too).
    pub sessions_per_minute: u32,
    /// Largest per-session memory (the model's estimate plus the transport's buffers) the server
    /// admits; a model that needs more is listed but its sessions are refused with 507.
    pub max_session_memory: u64,
    /// Memory all running sessions may hold together (sum of their estimates); sessions beyond
    /// it are refused with 503 and `Retry-After` until others finish.
    pub memory_budget: u64,
    /// What `Retry-After` says on 503 and 429 answers.
    pub retry_after: Duration,
    /// Memory admitted per session for the frame in flight to the client (the WebSocket layer's
    /// copy of it; frames are sent one at a time). At least the largest server frame (≈ 7 MB for
    /// a pooled garbled chunk at k = 32).
    pub write_buffer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 64,
            // The binary's default is 4 (`--max-sessions-per-address`); in-process servers (tests,
            // benchmarks) run many sessions from 127.0.0.1.
            max_sessions_per_address: 64,
            max_frame_bytes: 64 << 20,
            idle_timeout: Duration::from_secs(120),
            send_timeout: Duration::from_secs(60),
            offline_deadline: Duration::from_secs(900),
            online_deadline: Duration::from_secs(300),
            prepared_ttl: Duration::from_secs(600),
            keepalive: Duration::from_secs(20),
            sessions_per_minute: 60,
            max_session_memory: 2 << 30,
            memory_budget: 8 << 30,
            retry_after: Duration::from_secs(5),
            write_buffer_bytes: 16 << 20,
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

    /// Gives back the token of an attempt refused for another reason (busy, too large), so that a
    /// client retrying politely after a 503 is not then refused with 429.
    pub fn refund(&self, ip: IpAddr) {
        if self.per_minute == 0 {
            return;
        }
        if let Ok(mut buckets) = self.buckets.lock() {
            if let Some((tokens, _)) = buckets.get_mut(&ip) {
                *tokens = (*tokens + 1.0).min(f64::from(self.per_minute));
            }
        }
    }
}

/// Sessions held per client address, bounded.
#[derive(Debug, Default)]
pub struct AddressSlots {
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One session slot of an address, released on drop.
#[derive(Debug)]
pub struct AddressSlot {
    slots: Arc<AddressSlots>,
    ip: IpAddr,
}

impl AddressSlots {
    /// Takes a slot for `ip` if it holds fewer than `max`.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr, max: usize) -> Result<AddressSlot, AppError> {
        let mut held = self.held.lock().map_err(|_| AppError::Internal)?;
        let n = held.entry(ip).or_insert(0);
        if *n >= max {
            return Err(AppError::AddressBusy { max });
        }
        *n += 1;
        Ok(AddressSlot {
            slots: self.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut held) = self.slots.held.lock() {
            if let Some(n) = held.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    held.remove(&self.ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refuses_after_capacity_and_refunds() {
        let r = RateLimiter::new(3);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            r.check(ip).unwrap();
        }
        assert!(matches!(r.check(ip), Err(AppError::RateLimited)));
        r.refund(ip);
        r.check(ip).unwrap();
        r.check(other).unwrap();
        assert!(RateLimiter::new(0).check(ip).is_ok());
    }

    #[test]
    fn address_slots_are_bounded_and_released() {
        let slots = Arc::new(AddressSlots::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = slots.acquire(ip, 2).unwrap();
        let _b = slots.acquire(ip, 2).unwrap();
        assert!(matches!(
            slots.acquire(ip, 2),
            Err(AppError::AddressBusy { max: 2 })
        ));
        drop(a);
        slots.acquire(ip, 2).unwrap();
    }
}
