//! One kind of object kept by one watch: the reflector's store, whether its first list has
//! arrived, a change counter that every live stream shares (the fan-out), and the wait that
//! lets a read right after a write see the write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::Resource;
use tokio::sync::watch;

/// How long a read after a write waits for the watch to bring the write. A watch event
/// arrives within milliseconds of the write on a healthy cluster; past this the read goes on
/// with what the cache has (and the page's live stream brings the rest).
pub const CATCH_UP: Duration = Duration::from_secs(2);

/// The kinds' errors and successes, for the cache's health.
pub trait Health: Send + Sync {
    fn watch_failed(&self, kind: &'static str, error: &watcher::Error);
    fn watch_answered(&self);
}

pub struct Reflected<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    signals: Signals,
}

impl<K> Clone for Reflected<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    fn clone(&self) -> Self {
        Self { store: self.store.clone(), signals: self.signals.clone() }
    }
}

/// Whether `have` is the version `want` names or a later one. Resource versions are opaque by
/// contract, but every API server in use compares them as integers (etcd's revision); an
/// unparsable one only matches itself.
pub fn at_least(have: Option<&str>, want: Option<&str>) -> bool {
    match (have, want) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(h), Some(w)) => match (h.parse::<u64>(), w.parse::<u64>()) {
            (Ok(h), Ok(w)) => h >= w,
            _ => h == w,
        },
    }
}

/// What a watch's readers wait on: its first list, and a counter of its changes.
#[derive(Clone)]
pub struct Signals {
    synced: Arc<AtomicBool>,
    changes: watch::Receiver<u64>,
}

impl Signals {
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// A counter that moves on every change of the kind: what live streams wait on.
    /// Only changes after this call count.
    pub fn changes(&self) -> watch::Receiver<u64> {
        let mut rx = self.changes.clone();
        rx.mark_unchanged();
        rx
    }
}

/// The task that drives one watch: every event goes to `apply` (the store of its kind), then
/// the kind counts as synced after its first list and its change counter moves on every
/// change, and health hears of every answer and failure.
pub fn drive<K, S>(
    kind: &'static str,
    events: S,
    health: Arc<dyn Health>,
    mut apply: impl FnMut(&watcher::Event<K>) + Send + 'static,
) -> (Signals, impl std::future::Future<Output = ()> + Send)
where
    K: Send + 'static,
    S: Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
{
    let synced = Arc::new(AtomicBool::new(false));
    let (tx, changes) = watch::channel(0u64);
    let flag = synced.clone();
    let driver = async move {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(e) => {
                    health.watch_answered();
                    apply(&e);
                    match e {
                        watcher::Event::Init | watcher::Event::InitApply(_) => continue,
                        watcher::Event::InitDone => flag.store(true, Ordering::Release),
                        watcher::Event::Apply(_) | watcher::Event::Delete(_) => {}
                    }
                    tx.send_modify(|n| *n += 1);
                }
                Err(e) => health.watch_failed(kind, &e),
            }
        }
    };
    (Signals { synced, changes }, driver)
}

impl<K> Reflected<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    /// The store fed by `events` (a watcher stream, already slimmed) and the task that drives
    /// it; the task runs for as long as the server does.
    pub fn start<S>(kind: &'static str, events: S, health: Arc<dyn Health>) -> (Self, impl std::future::Future<Output = ()> + Send)
    where
        S: Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
    {
        let (store, mut writer) = reflector::store::<K>();
        let (signals, driver) = drive(kind, events, health, move |event| writer.apply_watcher_event(event));
        (Self { store, signals }, driver)
    }

    pub fn is_synced(&self) -> bool {
        self.signals.is_synced()
    }

    /// Every object, as of now.
    pub fn state(&self) -> Vec<Arc<K>> {
        self.store.state()
    }

    pub fn get(&self, name: &str, namespace: Option<&str>) -> Option<Arc<K>> {
        let mut key = ObjectRef::<K>::new(name);
        if let Some(ns) = namespace {
            key = key.within(ns);
        }
        self.store.get(&key)
    }

    /// A counter that moves on every change of this kind: what live streams wait on.
    /// Only changes after this call count.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.signals.changes()
    }

    /// `view` of the object `name` after every change of this kind (while it exists): a live
    /// stream fed by the shared watch, however many streams are open.
    pub fn follow<V>(&self, name: &str, namespace: Option<&str>, view: fn(&K) -> V) -> impl Stream<Item = V> + Send + 'static
    where
        V: Send + 'static,
    {
        let (this, name, namespace) = (self.clone(), name.to_string(), namespace.map(str::to_string));
        futures::stream::unfold(self.changes(), move |mut changes| {
            let (this, name, namespace) = (this.clone(), name.clone(), namespace.clone());
            async move {
                loop {
                    changes.changed().await.ok()?;
                    if let Some(obj) = this.get(&name, namespace.as_deref()) {
                        return Some((view(&obj), changes));
                    }
                }
            }
        })
    }

    /// Waits until the cache holds `written` (as the API server returned it) or a later
    /// version of it; false when it did not come within [`CATCH_UP`].
    pub async fn caught_up(&self, written: &K) -> bool {
        let meta = written.meta();
        let (name, namespace, version) = (meta.name.clone().unwrap_or_default(), meta.namespace.clone(), meta.resource_version.clone());
        self.wait(|| self.get(&name, namespace.as_deref()).is_some_and(|k| at_least(k.meta().resource_version.as_deref(), version.as_deref()))).await
    }

    /// Waits until the object is gone from the cache (deleted without a finalizer).
    pub async fn gone(&self, name: &str, namespace: Option<&str>) -> bool {
        self.wait(|| self.get(name, namespace).is_none()).await
    }

    async fn wait(&self, done: impl Fn() -> bool) -> bool {
        let mut changes = self.changes();
        tokio::time::timeout(CATCH_UP, async {
            loop {
                if done() {
                    return;
                }
                if changes.changed().await.is_err() {
                    // The watch task is gone: nothing more will come.
                    futures::future::pending::<()>().await;
                }
            }
        })
        .await
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_the_api_server_counts_them() {
        assert!(at_least(Some("120"), Some("99")), "numbers, not strings");
        assert!(at_least(Some("99"), Some("99")));
        assert!(!at_least(Some("98"), Some("99")));
        assert!(!at_least(None, Some("1")));
        assert!(at_least(Some("x"), Some("x")) && !at_least(Some("y"), Some("x")));
    }
}
