//! Leader election over a `coordination.k8s.io` Lease: with several server replicas, one runs
//! the engine. A replica holds the lease while it renews it; a holder that stops renewing for
//! the lease duration is replaced. Writes carry the read's resourceVersion, so two replicas
//! racing for an expired lease cannot both win.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;

pub const LEASE_NAME: &str = "hexabase-engine";
pub const LEASE_DURATION: Duration = Duration::from_secs(15);

pub struct LeaderElector {
    api: Api<Lease>,
    identity: String,
    duration: Duration,
}

/// Who holds a lease now, if it is still valid at `now`.
pub fn valid_holder(spec: &LeaseSpec, now: Timestamp) -> Option<&str> {
    let holder = spec.holder_identity.as_deref()?;
    let renewed = spec.renew_time.as_ref()?.0;
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    (renewed.as_second() + secs > now.as_second()).then_some(holder)
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
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
    /// `Ok(true)`: we hold it now. `Ok(false)`: someone else does (or won a race).
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else {
            let lease = Lease { metadata: ObjectMeta { name: Some(LEASE_NAME.into()), ..Default::default() }, spec: Some(self.spec(None, 0)) };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let current = lease.spec.clone().unwrap_or_default();
        let ours = current.holder_identity.as_deref() == Some(self.identity.as_str());
        if !ours && valid_holder(&current, Timestamp::now()).is_some() {
            return Ok(false);
        }
        let (acquired, transitions) =
            if ours { (current.acquire_time.clone(), current.lease_transitions.unwrap_or(0)) } else { (None, current.lease_transitions.unwrap_or(0) + 1) };
        lease.spec = Some(self.spec(acquired, transitions));
        match self.api.replace(LEASE_NAME, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Runs `engine` while this replica holds the lease, forever: it is started when the lease
    /// is won and aborted as soon as a renewal fails, then waits to win again.
    pub async fn run<F, Fut>(self, engine: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let retry = self.duration / 3;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {}
                Ok(false) => {
                    tokio::time::sleep(retry).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "leader election: cannot read the lease");
                    tokio::time::sleep(retry).await;
                    continue;
                }
            }
            tracing::info!(identity = %self.identity, "leader election: this replica runs the engine");
            let task = tokio::spawn(engine());
            loop {
                tokio::time::sleep(retry).await;
                match self.try_acquire_or_renew().await {
                    Ok(true) => {}
                    outcome => {
                        tracing::warn!(?outcome, "leader election: lease lost; stopping the engine");
                        break;
                    }
                }
            }
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_secs_ago: i64, duration: i32) -> LeaseSpec {
        let renewed = Timestamp::from_second(Timestamp::now().as_second() - renewed_secs_ago).unwrap();
        LeaseSpec { holder_identity: Some(holder.into()), renew_time: Some(MicroTime(renewed)), lease_duration_seconds: Some(duration), ..Default::default() }
    }

    #[test]
    fn a_lease_is_held_until_its_duration_passes_without_renewal() {
        assert_eq!(valid_holder(&spec("a", 5, 15), Timestamp::now()), Some("a"));
        assert_eq!(valid_holder(&spec("a", 20, 15), Timestamp::now()), None);
        assert_eq!(valid_holder(&LeaseSpec::default(), Timestamp::now()), None);
    }
}
