//! Rate limits for log lines a client can trigger at will (refused handshakes, bad
//! signatures, plain HTTP on the TLS port): at most one line per client address per
//! interval, so a retrying client leaves one line, not one per attempt.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many client addresses one limiter remembers; beyond that, lines are dropped
/// until old entries expire (a flood from many addresses cannot grow memory).
const MAX_TRACKED: usize = 4096;

/// Allows one log line per client address per interval.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    last: Mutex<HashMap<IpAddr, Instant>>,
}

impl LogLimiter {
    /// A limiter allowing one line per address per `interval`.
    pub fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// A limiter allowing one line per address per minute.
    pub fn per_minute() -> Self {
        Self::new(Duration::from_secs(60))
    }

    /// Whether a line about `addr` may be logged now; a `true` answer starts the
    /// address's quiet interval.
    pub fn allow(&self, addr: IpAddr) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = last.get(&addr) {
            if now.duration_since(*at) < self.interval {
                return false;
            }
        }
        if last.len() >= MAX_TRACKED {
            last.retain(|_, at| now.duration_since(*at) < self.interval);
            if last.len() >= MAX_TRACKED {
                return false;
            }
        }
        last.insert(addr, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_address_per_interval() {
        let limiter = LogLimiter::new(Duration::from_millis(200));
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        assert!(limiter.allow(a));
        assert!(!limiter.allow(a), "a retry within the interval is quiet");
        assert!(limiter.allow(b), "another address has its own interval");
        std::thread::sleep(Duration::from_millis(250));
        assert!(limiter.allow(a), "after the interval, one more line");
    }

    #[test]
    fn a_flood_of_addresses_is_bounded() {
        let limiter = LogLimiter::per_minute();
        for i in 0..MAX_TRACKED as u32 {
            assert!(limiter.allow(IpAddr::from((0x0a00_0000 + i).to_be_bytes())));
        }
        assert!(!limiter.allow("192.168.0.1".parse().unwrap()));
        assert_eq!(limiter.last.lock().unwrap().len(), MAX_TRACKED);
    }
}
