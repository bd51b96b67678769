//! Sign-in rate limiting, in memory (each replica limits on its own, which still bounds
//! guessing; a replica's memory is bounded).
//!
//! - An attempt is *reserved* before the password is checked, atomically: the failures in the
//!   window plus the attempts in flight count against the limit, so a burst of parallel
//!   requests cannot all pass a check made before any of them failed.
//! - The limits (ARCHITECTURE.md, "Sign-in under attack"): 5 failures per email *from one
//!   client* in 15 minutes, and 20 failures per client across emails. A guesser locks out only
//!   itself: the owner signing in from another client is never refused for someone else's
//!   failures. A success clears that client's failures for that email.
//! - At most `max_keys` keys are remembered; expired ones go first, then the least recently
//!   used ones without an attempt in flight.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// Failures for one email from one client.
    ClientEmail(String, String),
    /// Failures from one client, whatever the email.
    Client(String),
}

#[derive(Debug, Default)]
struct Entry {
    failures: VecDeque<Instant>,
    in_flight: usize,
    touched: Option<Instant>,
}

impl Entry {
    fn expire(&mut self, window: Duration, now: Instant) {
        while self.failures.front().is_some_and(|t| now.duration_since(*t) >= window) {
            self.failures.pop_front();
        }
    }
}

pub struct LoginLimiter {
    window: Duration,
    per_client_email: usize,
    per_client: usize,
    max_keys: usize,
    keys: Mutex<HashMap<Key, Entry>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(Duration::from_secs(15 * 60), 5, 20, 100_000)
    }
}

/// A reserved sign-in attempt: say how it ended. Dropped without a word (the request failed
/// for another reason, say the database), it counts as nothing.
#[must_use]
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    keys: [Key; 2],
    done: bool,
}

impl Attempt<'_> {
    /// The password was right: the client's failures for this email are forgiven.
    pub fn succeeded(mut self) {
        self.done = true;
        let mut map = self.limiter.lock();
        for key in &self.keys {
            if let Some(e) = map.get_mut(key) {
                e.in_flight = e.in_flight.saturating_sub(1);
            }
        }
        map.remove(&self.keys[0]);
    }

    /// The password was wrong (or the account unknown): it counts.
    pub fn failed(mut self, now: Instant) {
        self.done = true;
        let mut map = self.limiter.lock();
        for key in &self.keys {
            if let Some(e) = map.get_mut(key) {
                e.in_flight = e.in_flight.saturating_sub(1);
                e.failures.push_back(now);
                e.touched = Some(now);
            }
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut map = self.limiter.lock();
        for key in &self.keys {
            if let Some(e) = map.get_mut(key) {
                e.in_flight = e.in_flight.saturating_sub(1);
            }
        }
    }
}

impl LoginLimiter {
    pub fn new(window: Duration, per_client_email: usize, per_client: usize, max_keys: usize) -> Self {
        Self { window, per_client_email, per_client, max_keys: max_keys.max(2), keys: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        // A panic while holding the lock leaves counts that are still counts: keep going.
        self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reserves an attempt for `email` from `client`, or says how long to wait.
    pub fn reserve(&self, email: &str, client: &str, now: Instant) -> Result<Attempt<'_>, Duration> {
        let keys = [Key::ClientEmail(client.to_string(), email.to_string()), Key::Client(client.to_string())];
        let limits = [self.per_client_email, self.per_client];
        let mut map = self.lock();
        let mut wait: Option<Duration> = None;
        for (key, limit) in keys.iter().zip(limits) {
            if let Some(e) = map.get_mut(key) {
                e.expire(self.window, now);
                if e.failures.len() + e.in_flight >= limit {
                    let w = e.failures.front().map_or(Duration::from_secs(1), |first| self.window.saturating_sub(now.duration_since(*first)));
                    wait = Some(wait.map_or(w, |x| x.max(w)));
                }
            }
        }
        if let Some(w) = wait {
            return Err(w.max(Duration::from_secs(1)));
        }
        for key in &keys {
            if !map.contains_key(key) && map.len() >= self.max_keys {
                self.make_room(&mut map, now);
            }
            let e = map.entry(key.clone()).or_default();
            e.in_flight += 1;
            e.touched = Some(now);
        }
        Ok(Attempt { limiter: self, keys, done: false })
    }

    /// Forgets expired keys; if that is not enough, the least recently used idle ones.
    fn make_room(&self, map: &mut HashMap<Key, Entry>, now: Instant) {
        map.retain(|_, e| {
            e.expire(self.window, now);
            !e.failures.is_empty() || e.in_flight > 0
        });
        while map.len() >= self.max_keys {
            let oldest = map.iter().filter(|(_, e)| e.in_flight == 0).min_by_key(|(_, e)| e.touched).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    map.remove(&k);
                }
                None => break,
            }
        }
    }

    /// How many keys are remembered (for tests and metrics).
    pub fn keys(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> LoginLimiter {
        LoginLimiter::new(Duration::from_secs(60), 3, 5, 1000)
    }

    #[test]
    fn a_client_is_blocked_for_an_email_after_the_limit_and_freed_after_the_window() {
        let l = limiter();
        let t0 = Instant::now();
        for _ in 0..3 {
            l.reserve("a@x", "c1", t0).unwrap().failed(t0);
        }
        let wait = l.reserve("a@x", "c1", t0 + Duration::from_secs(10)).err().expect("blocked");
        assert_eq!(wait, Duration::from_secs(50));
        assert!(l.reserve("a@x", "c1", t0 + Duration::from_secs(61)).is_ok(), "the window passed");
    }

    #[test]
    fn the_owner_on_another_client_is_not_locked_out_by_a_guesser() {
        let l = limiter();
        let t0 = Instant::now();
        for _ in 0..3 {
            l.reserve("owner@x", "attacker", t0).unwrap().failed(t0);
        }
        assert!(l.reserve("owner@x", "attacker", t0).is_err());
        l.reserve("owner@x", "owners-laptop", t0).expect("the owner's own client may still try").succeeded();
    }

    #[test]
    fn attempts_in_flight_count_so_a_burst_gets_only_the_limit() {
        let l = limiter();
        let t0 = Instant::now();
        let reserved: Vec<_> = (0..60).filter_map(|_| l.reserve("a@x", "c", t0).ok()).collect();
        assert_eq!(reserved.len(), 3, "60 at once, 3 reserved");
        drop(reserved);
        assert!(l.reserve("a@x", "c", t0).is_ok(), "undecided attempts that end count as nothing");
    }

    #[test]
    fn success_forgives_the_clients_failures_for_that_email() {
        let l = limiter();
        let t0 = Instant::now();
        l.reserve("a@x", "c", t0).unwrap().failed(t0);
        l.reserve("a@x", "c", t0).unwrap().failed(t0);
        l.reserve("a@x", "c", t0).unwrap().succeeded();
        for _ in 0..3 {
            l.reserve("a@x", "c", t0).unwrap().failed(t0);
        }
        assert!(l.reserve("a@x", "c", t0).is_err());
    }

    #[test]
    fn a_client_spraying_emails_is_limited() {
        let l = limiter();
        let t0 = Instant::now();
        for i in 0..5 {
            l.reserve(&format!("u{i}@x"), "c", t0).unwrap().failed(t0);
        }
        assert!(l.reserve("fresh@x", "c", t0).is_err());
        assert!(l.reserve("fresh@x", "other-client", t0).is_ok());
    }

    #[test]
    fn memory_is_bounded() {
        let l = LoginLimiter::new(Duration::from_secs(60), 3, 5, 100);
        let t0 = Instant::now();
        for i in 0..10_000 {
            l.reserve(&format!("u{i}@x"), &format!("client-{i}"), t0).unwrap().failed(t0);
        }
        assert!(l.keys() <= 100, "{} keys remembered", l.keys());
    }
}
