//! Sign-in rate limiting: a sliding window of failed attempts, per email and per client.
//! In memory: with several replicas each limits on its own, which still bounds guessing.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LoginLimiter {
    window: Duration,
    per_email: usize,
    per_client: usize,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(Duration::from_secs(15 * 60), 5, 20)
    }
}

impl LoginLimiter {
    pub fn new(window: Duration, per_email: usize, per_client: usize) -> Self {
        Self { window, per_email, per_client, failures: Mutex::new(HashMap::new()) }
    }

    fn keys(email: &str, client: &str) -> [String; 2] {
        [format!("email:{email}"), format!("client:{client}")]
    }

    /// `Err(wait)` when either the email or the client used up its attempts.
    pub fn check(&self, email: &str, client: &str, now: Instant) -> Result<(), Duration> {
        let mut map = self.failures.lock().expect("limiter lock");
        let [ek, ck] = Self::keys(email, client);
        let mut wait = None;
        for (key, limit) in [(ek, self.per_email), (ck, self.per_client)] {
            if let Some(q) = map.get_mut(&key) {
                while q.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
                    q.pop_front();
                }
                if q.len() >= limit {
                    let w = self.window - now.duration_since(*q.front().expect("non-empty"));
                    wait = Some(wait.map_or(w, |x: Duration| x.max(w)));
                }
            }
        }
        wait.map_or(Ok(()), Err)
    }

    pub fn record_failure(&self, email: &str, client: &str, now: Instant) {
        let mut map = self.failures.lock().expect("limiter lock");
        for key in Self::keys(email, client) {
            map.entry(key).or_default().push_back(now);
        }
    }

    /// A successful sign-in clears the email's failures (not the client's).
    pub fn record_success(&self, email: &str) {
        self.failures.lock().expect("limiter lock").remove(&format!("email:{email}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_and_frees_after_the_window() {
        let l = LoginLimiter::new(Duration::from_secs(60), 3, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check("a@x", "c1", t0).is_ok());
            l.record_failure("a@x", "c1", t0);
        }
        let wait = l.check("a@x", "c2", t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(l.check("b@x", "c1", t0).is_ok(), "another email from the same client is still allowed");
        assert!(l.check("a@x", "c1", t0 + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn success_resets_the_email() {
        let l = LoginLimiter::new(Duration::from_secs(60), 2, 100);
        let t0 = Instant::now();
        l.record_failure("a@x", "c", t0);
        l.record_failure("a@x", "c", t0);
        assert!(l.check("a@x", "c", t0).is_err());
        l.record_success("a@x");
        assert!(l.check("a@x", "c", t0).is_ok());
    }

    #[test]
    fn a_client_spraying_emails_is_limited() {
        let l = LoginLimiter::new(Duration::from_secs(60), 100, 3);
        let t0 = Instant::now();
        for i in 0..3 {
            l.record_failure(&format!("u{i}@x"), "c", t0);
        }
        assert!(l.check("fresh@x", "c", t0).is_err());
    }
}
