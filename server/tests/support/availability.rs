//! An independent watch on a workload's pods (not the engine's own measurement): the lowest
//! number of Ready, non-terminating pods seen since it started. A watch error makes `lowest`
//! panic: a probe that stopped watching would report a lowest count that was never measured.
//! A watch the API server ends (a restart) is resumed from a fresh list; the gap is counted
//! and reported, so a test that restarts the API server knows what it could not see.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher;
use kube::ResourceExt;

pub fn pod_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub struct AvailabilityProbe {
    lowest: Arc<AtomicI32>,
    /// Watch errors tolerated (the API server went away and came back); each restarts the
    /// watch from a list.
    pub interruptions: Arc<AtomicU32>,
    error: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AvailabilityProbe {
    /// Starts watching pods labelled `app=<app>`; returns once the first list is in.
    /// `tolerate_outages`: keep watching across watch errors (an API server restart) instead
    /// of failing.
    pub async fn start(pods: Api<Pod>, app: &str, tolerate_outages: bool) -> AvailabilityProbe {
        let lowest = Arc::new(AtomicI32::new(i32::MAX));
        let interruptions = Arc::new(AtomicU32::new(0));
        let error = Arc::new(Mutex::new(None));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (low, failed, gaps) = (lowest.clone(), error.clone(), interruptions.clone());
        let config = watcher::Config::default().labels(&format!("app={app}"));
        let task = tokio::spawn(async move {
            let mut ready: BTreeMap<String, bool> = BTreeMap::new();
            let mut init: BTreeMap<String, bool> = BTreeMap::new();
            let mut tx = Some(tx);
            let mut listing = false;
            let mut stream = watcher(pods, config).boxed();
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(e) => e,
                    Err(e) if tolerate_outages => {
                        gaps.fetch_add(1, Ordering::SeqCst);
                        tracing::debug!(error = %e, "availability watch interrupted; resuming");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    Err(e) => {
                        *failed.lock().unwrap() = Some(e.to_string());
                        return;
                    }
                };
                match event {
                    watcher::Event::Init => {
                        init.clear();
                        listing = true;
                    }
                    watcher::Event::InitApply(p) => {
                        init.insert(p.name_any(), pod_ready(&p));
                    }
                    watcher::Event::InitDone => {
                        ready = std::mem::take(&mut init);
                        listing = false;
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    watcher::Event::Apply(p) => {
                        ready.insert(p.name_any(), pod_ready(&p));
                    }
                    watcher::Event::Delete(p) => {
                        ready.remove(&p.name_any());
                    }
                }
                if tx.is_none() && !listing {
                    let n = ready.values().filter(|r| **r).count() as i32;
                    low.fetch_min(n, Ordering::SeqCst);
                }
            }
        });
        let _ = tokio::time::timeout(Duration::from_secs(60), rx).await;
        AvailabilityProbe { lowest, interruptions, error, task }
    }

    /// The lowest count seen; panics if the watch failed or stopped.
    pub fn lowest(&self) -> i32 {
        if let Some(e) = self.error.lock().unwrap().as_ref() {
            panic!("the independent availability watch failed: {e}");
        }
        assert!(!self.task.is_finished(), "the independent availability watch stopped");
        self.lowest.load(Ordering::SeqCst)
    }
}

impl Drop for AvailabilityProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}
