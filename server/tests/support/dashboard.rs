//! A browser's view of a replica: sign in, call server functions and pages with the session
//! cookie sent by hand (so one session can be carried from one replica to another, as a load
//! balancer does), and read a live-progress stream (server-sent events).

use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE};
use serde_json::Value;

/// A signed-in session: the cookie a browser would send.
#[derive(Debug, Clone)]
pub struct Session {
    pub cookie: String,
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(30)).build().unwrap()
}

/// Signs in at `base` (a replica's root URL); panics unless the sign-in succeeds.
pub async fn sign_in(base: &str, email: &str, password: &str) -> Session {
    let r = http()
        .post(format!("{base}/api/sign_in"))
        .header(ORIGIN, base)
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .expect("sign-in request");
    assert!(r.status().is_success() || r.status().is_redirection(), "sign-in at {base}: {}", r.status());
    let cookie = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|kv| kv.starts_with(&format!("{}=", app::backend::SESSION_COOKIE)))
        .expect("a session cookie")
        .to_string();
    Session { cookie }
}

/// Calls a server function at `base` the way the browser's ActionForm does.
pub async fn call(base: &str, session: &Session, name: &str, form: &[(&str, &str)]) -> reqwest::Response {
    http().post(format!("{base}/api/{name}")).header(ORIGIN, base).header(COOKIE, &session.cookie).form(form).send().await.expect("request sent")
}

/// GETs a page at `base` with the session.
pub async fn page(base: &str, session: &Session, path: &str) -> reqwest::Response {
    http().get(format!("{base}{path}")).header(COOKIE, &session.cookie).send().await.expect("request sent")
}

/// The workspace's notifications as `title: body`, read through `base`'s dashboard.
pub async fn notifications(base: &str, session: &Session, ws: &str) -> Vec<String> {
    let r = call(base, session, "notifications", &[("workspace", ws)]).await;
    assert!(r.status().is_success(), "notifications at {base}: {}", r.status());
    let v: Value = r.json().await.expect("JSON");
    v.as_array().expect("a list").iter().map(|n| format!("{}: {}", n["title"].as_str().unwrap_or(""), n["body"].as_str().unwrap_or(""))).collect()
}

/// A live-progress stream being read in the background: every `progress` event's data, in
/// order, until the stream ends (the server ends it once the state is settled).
pub struct EventStream {
    task: tokio::task::JoinHandle<Result<Vec<Value>, String>>,
}

impl EventStream {
    /// Opens `path` (e.g. `/api/events/w/{ws}/nodes/{name}`) at `base` and reads it until it
    /// ends, the connection drops, or `timeout` passes.
    pub async fn open(base: &str, session: &Session, path: &str, timeout: Duration) -> EventStream {
        let client = reqwest::Client::builder().build().unwrap();
        let mut r = client.get(format!("{base}{path}")).header(COOKIE, &session.cookie).send().await.expect("open the event stream");
        assert!(r.status().is_success(), "event stream {path} at {base}: {}", r.status());
        let task = tokio::spawn(async move {
            let deadline = Instant::now() + timeout;
            let mut buf = String::new();
            let mut events = Vec::new();
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, r.chunk()).await {
                    Err(_) => return Err(format!("no end within {timeout:?}; {} events: {events:?}", events.len())),
                    Ok(Err(e)) => return Err(format!("the stream broke: {e}; {} events so far", events.len())),
                    Ok(Ok(None)) => return Ok(events),
                    Ok(Ok(Some(bytes))) => {
                        buf.push_str(&String::from_utf8_lossy(&bytes));
                        while let Some(end) = buf.find("\n\n") {
                            let frame: String = buf.drain(..end + 2).collect();
                            if frame.lines().any(|l| l == "event: progress") {
                                let data: String = frame.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect::<Vec<_>>().join("\n");
                                events.push(serde_json::from_str(&data).unwrap_or(Value::String(data)));
                            }
                        }
                    }
                }
            }
        });
        EventStream { task }
    }

    /// The events, once the stream has ended; an error if it broke or did not end in time.
    pub async fn finish(self) -> Result<Vec<Value>, String> {
        self.task.await.map_err(|e| e.to_string())?
    }
}
