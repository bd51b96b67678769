//! How soon a failed reconcile runs again: at once for a lost race (someone else wrote first;
//! read again and go on), later for an outage (the API server or the database is away).
//! One policy for both controllers; each error type says which case it is.

use std::time::Duration;

use kube::runtime::finalizer;

/// A write refused because the object changed since it was read.
pub const LOST_RACE: Duration = Duration::from_millis(200);
/// Something this process depends on did not answer.
pub const OUTAGE: Duration = Duration::from_secs(5);
/// The database did not answer: it is rarely back within seconds.
pub const DATABASE_OUTAGE: Duration = Duration::from_secs(10);
/// A bug or a spec that cannot run: looking again soon would only repeat the log line.
pub const DEFECT: Duration = Duration::from_secs(60);

/// An error that knows how soon its reconcile should run again.
pub trait Retry {
    fn retry_after(&self) -> Duration;
}

/// A Kubernetes API error: a conflict (409) is a lost race, anything else an outage.
pub fn after_kube(e: &kube::Error) -> Duration {
    match e {
        kube::Error::Api(s) if s.code == 409 => LOST_RACE,
        _ => OUTAGE,
    }
}

/// An error from kube-runtime's finalizer helper around our own error `E`: the inner error
/// decides; adding or removing the finalizer itself can lose a race too (409, or 422 when the
/// object changed under a JSON patch's test).
pub fn after_finalizer<E: Retry + std::error::Error + 'static>(e: &finalizer::Error<E>) -> Duration {
    use finalizer::Error as F;
    match e {
        F::ApplyFailed(inner) | F::CleanupFailed(inner) => inner.retry_after(),
        F::AddFinalizer(kube::Error::Api(s)) | F::RemoveFinalizer(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => LOST_RACE,
        _ => OUTAGE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner(Duration);

    impl Retry for Inner {
        fn retry_after(&self) -> Duration {
            self.0
        }
    }

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status { code, ..Default::default() }))
    }

    #[test]
    fn lost_races_retry_at_once_and_outages_later() {
        assert_eq!(after_kube(&api(409)), LOST_RACE);
        assert_eq!(after_kube(&api(503)), OUTAGE);
        assert_eq!(after_finalizer(&finalizer::Error::ApplyFailed(Inner(DEFECT))), DEFECT);
        assert_eq!(after_finalizer::<Inner>(&finalizer::Error::AddFinalizer(api(422))), LOST_RACE);
        assert_eq!(after_finalizer::<Inner>(&finalizer::Error::RemoveFinalizer(api(500))), OUTAGE);
    }
}
