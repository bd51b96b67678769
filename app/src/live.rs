//! Following live progress in the browser: the server-sent `progress` events of one object,
//! for as long as the page wants them. The server ends a stream when the object settles, and
//! also when the stream's lifetime is over or a server replica goes away; then the page
//! reloads the current state (which re-checks the session) and listens again, backing off.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use gloo_net::eventsource::futures::EventSource;
use serde::de::DeserializeOwned;

/// What the page wants after an update.
pub enum Next {
    Listen,
    Stop,
}

const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(30);

/// Gives every `progress` event at `url` to `on_update` until it says `Stop`. When the stream
/// breaks first, `reload` fetches the state (`None`: signed out or gone, so stop), which goes
/// to `on_update` too, and the stream is opened again.
pub async fn follow<V, Reload, Loaded>(url: &str, mut on_update: impl FnMut(V) -> Next, reload: Reload)
where
    V: DeserializeOwned,
    Reload: Fn() -> Loaded,
    Loaded: Future<Output = Option<V>>,
{
    let mut retry = FIRST_RETRY;
    loop {
        if let Ok(mut source) = EventSource::new(url) {
            if let Ok(mut stream) = source.subscribe("progress") {
                while let Some(Ok((_, msg))) = stream.next().await {
                    retry = FIRST_RETRY;
                    let Some(update) = msg.data().as_string().and_then(|t| serde_json::from_str::<V>(&t).ok()) else { continue };
                    if let Next::Stop = on_update(update) {
                        source.close();
                        return;
                    }
                }
            }
            // Closed by us, so the browser does not reconnect on its own as well.
            source.close();
        }
        gloo_timers::future::sleep(retry).await;
        retry = (retry * 2).min(LAST_RETRY);
        match reload().await {
            Some(state) => {
                if let Next::Stop = on_update(state) {
                    return;
                }
            }
            None => return,
        }
    }
}
