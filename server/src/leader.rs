//! Leader election over a `coordination.k8s.io` Lease: with several server replicas, one runs
//! the engine. A replica holds the lease while it renews it; a holder that stops renewing for
//! the lease duration is replaced. Writes carry the read's resourceVersion, so two replicas
//! racing for an expired lease cannot both win.
//!
//! The timing follows client-go's leader election: the holder renews every [`RETRY_PERIOD`]
//! and stops its engine once it has gone [`RENEW_DEADLINE`] without a successful renewal
//! (each attempt is cut off at that deadline too: the kube client's read timeout is minutes),
//! which is before anyone else may take the lease ([`LEASE_DURATION`] after the last renewal).
//! A replica waiting for the lease wakes when the lease it saw expires, so a holder killed
//! without notice is replaced within the lease duration. Expiry is read from the holder's
//! `renewTime` against this replica's clock: the replicas' clocks are assumed in step (NTP),
//! as in any Kubernetes cluster.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;
use tokio::time::Instant;

pub const LEASE_NAME: &str = "hexabase-engine";
/// How long a lease stays valid after its last renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// The holder gives up (stops its engine) after this long without a successful renewal.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often the holder renews, and how often a replica retries after an error.
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

pub struct LeaderElector {
    api: Api<Lease>,
    identity: String,
    duration: Duration,
}

/// When a lease stops being valid: its last renewal plus its duration.
pub fn expires_at(spec: &LeaseSpec) -> Option<Timestamp> {
    let renewed = spec.renew_time.as_ref()?.0;
    renewed.checked_add(SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)))).ok()
}

/// Who holds a lease now, if it is still valid at `now`.
pub fn valid_holder(spec: &LeaseSpec, now: Timestamp) -> Option<&str> {
    let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty())?;
    (expires_at(spec)? > now).then_some(holder)
}

/// What an attempt to take or keep the lease found.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// This replica holds the lease now.
    Held,
    /// Another replica holds it (or won a race for it); it expires at this time, if known.
    Taken { holder: String, expires: Option<Timestamp> },
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// How long a waiting replica sleeps before it looks again: until the lease it saw expires (a
/// hair after, so the holder's last renewal has surely lapsed), at least a moment, at most the
/// lease duration.
pub fn wait_for(expires: Option<Timestamp>, now: Timestamp) -> Duration {
    let Some(expires) = expires else { return RETRY_PERIOD };
    let left = expires.duration_since(now).as_millis().max(0) as u64;
    Duration::from_millis(left + 100).clamp(Duration::from_millis(100), LEASE_DURATION)
}

impl LeaderElector {
    pub fn new(client: Client, namespace: &str, identity: String) -> Self {
        Self { api: Api::namespaced(client, namespace), identity, duration: LEASE_DURATION }
    }

    fn spec(&self, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Becomes or stays the holder if the lease is free, expired or already ours.
    pub async fn try_acquire_or_renew(&self) -> Result<Attempt, kube::Error> {
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else {
            let lease = Lease { metadata: ObjectMeta { name: Some(LEASE_NAME.into()), ..Default::default() }, spec: Some(self.spec(None, 0)) };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Held),
                Err(e) if is_conflict(&e) => Ok(Attempt::Taken { holder: String::new(), expires: None }),
                Err(e) => Err(e),
            };
        };
        let current = lease.spec.clone().unwrap_or_default();
        let ours = current.holder_identity.as_deref() == Some(self.identity.as_str());
        if !ours {
            if let Some(holder) = valid_holder(&current, Timestamp::now()) {
                return Ok(Attempt::Taken { holder: holder.to_string(), expires: expires_at(&current) });
            }
        }
        let (acquired, transitions) =
            if ours { (current.acquire_time.clone(), current.lease_transitions.unwrap_or(0)) } else { (None, current.lease_transitions.unwrap_or(0) + 1) };
        lease.spec = Some(self.spec(acquired, transitions));
        match self.api.replace(LEASE_NAME, &PostParams::default(), &lease).await {
            Ok(_) => Ok(Attempt::Held),
            Err(e) if is_conflict(&e) => Ok(Attempt::Taken { holder: String::new(), expires: None }),
            Err(e) => Err(e),
        }
    }

    /// Runs `engine` while this replica holds the lease, forever: it is started when the lease
    /// is won and stopped (aborted, and waited for) as soon as another replica holds the lease
    /// or no renewal has succeeded for [`RENEW_DEADLINE`]; then it waits to win again.
    pub async fn run<F, Fut>(self, engine: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        loop {
            let attempted = Instant::now();
            match tokio::time::timeout(RENEW_DEADLINE, self.try_acquire_or_renew()).await {
                Ok(Ok(Attempt::Held)) => {}
                Ok(Ok(Attempt::Taken { holder, expires })) => {
                    let wait = wait_for(expires, Timestamp::now());
                    tracing::debug!(%holder, wait_ms = wait.as_millis() as u64, "leader election: another replica runs the engine");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "leader election: cannot read the lease");
                    tokio::time::sleep(RETRY_PERIOD).await;
                    continue;
                }
                Err(_) => {
                    tracing::warn!("leader election: the API server did not answer in time");
                    continue;
                }
            }
            tracing::info!(identity = %self.identity, "leader election: this replica runs the engine");
            let task = tokio::spawn(engine());
            self.hold(attempted).await;
            task.abort();
            let _ = task.await;
            tracing::warn!(identity = %self.identity, "leader election: the engine is stopped");
        }
    }

    /// Renews the lease until it is lost; returns once the engine must stop. `renewed`: when
    /// the last successful write was sent.
    async fn hold(&self, mut renewed: Instant) {
        loop {
            tokio::time::sleep_until(renewed + RETRY_PERIOD).await;
            loop {
                let Some(left) = (renewed + RENEW_DEADLINE).checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                    tracing::warn!(deadline_s = RENEW_DEADLINE.as_secs(), "leader election: no renewal within the deadline; stopping the engine");
                    return;
                };
                let attempt = Instant::now();
                match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                    Ok(Ok(Attempt::Held)) => {
                        renewed = attempt;
                        break;
                    }
                    Ok(Ok(Attempt::Taken { holder, .. })) => {
                        tracing::warn!(%holder, "leader election: lease lost to another replica; stopping the engine");
                        return;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "leader election: renewal failed; retrying until the deadline");
                        tokio::time::sleep(RETRY_PERIOD.min(left)).await;
                    }
                    Err(_) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_ms_ago: i64, duration: i32) -> LeaseSpec {
        let renewed = Timestamp::from_millisecond(Timestamp::now().as_millisecond() - renewed_ms_ago).unwrap();
        LeaseSpec { holder_identity: Some(holder.into()), renew_time: Some(MicroTime(renewed)), lease_duration_seconds: Some(duration), ..Default::default() }
    }

    #[test]
    fn a_lease_is_held_until_its_duration_passes_without_renewal() {
        assert_eq!(valid_holder(&spec("a", 5_000, 15), Timestamp::now()), Some("a"));
        assert_eq!(valid_holder(&spec("a", 20_000, 15), Timestamp::now()), None);
        assert_eq!(valid_holder(&LeaseSpec::default(), Timestamp::now()), None);
        assert_eq!(valid_holder(&spec("", 0, 15), Timestamp::now()), None, "a released lease has no holder");
    }

    #[test]
    fn expiry_counts_milliseconds_not_whole_seconds() {
        // Renewed 14.6 s ago with 15 s: valid 0.4 s more (whole seconds would say 0 or 1 s).
        let s = spec("a", 14_600, 15);
        let now = Timestamp::now();
        assert_eq!(valid_holder(&s, now), Some("a"));
        let left = expires_at(&s).unwrap().duration_since(now).as_millis();
        assert!((350..=400).contains(&left), "{left} ms left");
        assert_eq!(valid_holder(&s, now.checked_add(SignedDuration::from_millis(500)).unwrap()), None);
    }

    #[test]
    fn a_waiting_replica_wakes_just_after_the_lease_it_saw_expires() {
        let now = Timestamp::now();
        let at = |ms: i64| Some(now.checked_add(SignedDuration::from_millis(ms)).unwrap());
        assert_eq!(wait_for(at(3_000), now), Duration::from_millis(3_100));
        assert_eq!(wait_for(at(-5_000), now), Duration::from_millis(100), "already expired: look again at once");
        assert_eq!(wait_for(at(60_000), now), LEASE_DURATION, "never longer than a lease");
        assert_eq!(wait_for(None, now), RETRY_PERIOD);
    }
}
