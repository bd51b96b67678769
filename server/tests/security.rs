//! Security through real HTTP against a real server: the sign-in limiter under a burst, the
//! client behind a proxy, what a failed sign-in records, redirects after sign-in, headers,
//! sessions, names from requests, and roles.

mod support;

use app::model::Role;
use reqwest::StatusCode;
use support::{backends, DbKind, TestServer};

async fn text(r: reqwest::Response) -> (StatusCode, String) {
    let s = r.status();
    (s, r.text().await.unwrap())
}

/// A burst of 60 wrong passwords for one email at once: the limit holds while they are in
/// flight, so at most 5 reach a password check (each check is audited) and the rest are
/// refused at once.
#[tokio::test]
async fn a_burst_of_sixty_guesses_gets_at_most_five_password_checks() {
    let srv = TestServer::start(DbKind::Sqlite).await;
    let http = srv.new_client();
    let calls = (0..60).map(|_| srv.sign_in(&http, "dev@example.com", "wrong-guess"));
    let statuses: Vec<StatusCode> = futures::future::join_all(calls).await.into_iter().map(|r| r.status()).collect();
    let checked = statuses.iter().filter(|s| **s == StatusCode::UNPROCESSABLE_ENTITY).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(checked + refused, 60, "{statuses:?}");
    assert!(checked <= 5, "{checked} guesses were checked");
    let audit = srv.store().await.audit_entries(None).await.unwrap();
    let checks = audit.iter().filter(|e| e.action == "sign-in" && e.outcome == "failed").count();
    assert!(checks <= 5, "{checks} password checks for one email");
    srv.stop().await;
}

/// The same guesses, four at a time (as many as may be checked at once, so none is turned
/// away as busy): the limit still holds, because attempts in flight count.
#[tokio::test]
async fn guesses_in_waves_still_get_at_most_five_password_checks() {
    use futures::StreamExt;
    let srv = TestServer::start(DbKind::Sqlite).await;
    let http = srv.new_client();
    let statuses: Vec<StatusCode> =
        futures::stream::iter(0..60).map(|_| srv.sign_in(&http, "dev@example.com", "wrong-guess")).buffer_unordered(4).map(|r| r.status()).collect().await;
    let audit = srv.store().await.audit_entries(None).await.unwrap();
    let checks = audit.iter().filter(|e| e.action == "sign-in" && e.outcome == "failed").count();
    assert!(checks <= 5, "{checks} password checks for one email: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count(), 60 - checks);
    srv.stop().await;
}

/// Five wrong guesses from one client lock that client out for that email, not the owner on
/// another client: behind a trusted proxy the client is the forwarded address.
#[tokio::test]
async fn a_guesser_behind_the_proxy_locks_out_only_itself() {
    let srv = TestServer::start_with(DbKind::Sqlite, |c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let from = |ip: &str| {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("x-forwarded-for", ip.parse().unwrap());
        h.insert(reqwest::header::ORIGIN, srv.base.parse().unwrap());
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).default_headers(h).build().unwrap()
    };
    let guesser = from("203.0.113.66");
    for _ in 0..5 {
        assert_eq!(srv.sign_in(&guesser, "dev@example.com", "nope").await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(srv.sign_in(&guesser, "dev@example.com", "hexabase-demo").await.status(), StatusCode::TOO_MANY_REQUESTS, "the guesser is refused");
    let owner = from("198.51.100.7");
    let r = srv.sign_in(&owner, "dev@example.com", "hexabase-demo").await;
    assert!(r.status().is_success() || r.status().is_redirection(), "the owner elsewhere signs in: {}", r.status());
    let audit = srv.store().await.audit_entries(None).await.unwrap();
    assert!(audit.iter().any(|e| e.outcome == "succeeded" && e.detail.as_deref() == Some("client 198.51.100.7")), "the forwarded client is recorded");
    srv.stop().await;
}

#[tokio::test]
async fn without_a_trusted_proxy_forwarded_addresses_are_ignored() {
    let srv = TestServer::start(DbKind::Sqlite).await;
    for i in 0..5 {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("x-forwarded-for", format!("203.0.113.{i}").parse().unwrap());
        h.insert(reqwest::header::ORIGIN, srv.base.parse().unwrap());
        let http = reqwest::Client::builder().default_headers(h).build().unwrap();
        srv.sign_in(&http, "dev@example.com", "nope").await;
    }
    let (status, _) = text(srv.sign_in(&srv.new_client(), "dev@example.com", "hexabase-demo").await).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "five guesses from one peer count as one client, whatever they claim");
    srv.stop().await;
}

#[tokio::test]
async fn a_failed_sign_in_for_no_account_does_not_record_what_was_typed() {
    let srv = TestServer::start(DbKind::Sqlite).await;
    let typed = "my-secret-password-typed-in-the-email-field";
    let (status, _) = text(srv.sign_in(&srv.new_client(), typed, "x").await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let audit = srv.store().await.audit_entries(None).await.unwrap();
    let failed: Vec<_> = audit.iter().filter(|e| e.action == "sign-in" && e.outcome == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].actor, server::backend::UNKNOWN_ACCOUNT);
    assert!(!format!("{audit:?}").contains(typed), "{audit:?}");
    srv.stop().await;
}

/// `next` is followed only to this site's own paths; every trick goes to the dashboard, and a
/// newline never breaks the redirect.
#[tokio::test]
async fn after_sign_in_next_never_leaves_the_site() {
    let srv = TestServer::start(DbKind::Sqlite).await;
    let cases = [
        ("/w/acme-production/migrations", "/w/acme-production/migrations"),
        ("//evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("/w\r\nSet-Cookie: hx_session=forged", "/"),
        ("/\\evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("http:evil.example", "/"),
        ("%2F%2Fevil.example", "/"),
        ("/%0A/evil.example", "/%0A/evil.example"),
    ];
    for (next, expected) in cases {
        let http = srv.new_client();
        let r = srv.call(&http, "sign_in", &[("email", "dev@example.com"), ("password", "hexabase-demo"), ("next", next)]).await;
        assert!(r.status().is_success() || r.status().is_redirection(), "{next:?}: {}", r.status());
        assert_eq!(r.headers().get("location").map(|l| l.to_str().unwrap()), Some(expected), "{next:?}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn pages_carry_a_content_security_policy_with_a_fresh_nonce_and_are_never_framed() {
    let srv = TestServer::start(DbKind::Sqlite).await;
    let http = srv.new_client();
    let page = http.get(format!("{}/login", srv.base)).send().await.unwrap();
    let header = |name: &str| page.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let csp = header("content-security-policy");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "same-origin");
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("'wasm-unsafe-eval'") && !csp.contains("unsafe-inline"), "{csp}");
    let nonce = csp.split("'nonce-").nth(1).and_then(|r| r.split('\'').next()).expect("a nonce").to_string();
    let body = page.text().await.unwrap();
    let inline_scripts = body.matches("<script").count();
    assert!(
        inline_scripts > 0 && body.matches(&format!("nonce=\"{nonce}\"")).count() >= inline_scripts - body.matches("<script src").count(),
        "every inline script carries the nonce"
    );
    let again = http.get(format!("{}/login", srv.base)).send().await.unwrap();
    assert!(!again.headers()["content-security-policy"].to_str().unwrap().contains(&nonce), "a nonce is used once");
    let api = srv.call(&http, "my_workspaces", &[]).await;
    assert!(api.headers()["content-security-policy"].to_str().unwrap().contains("script-src 'none'"), "responses that are not pages run nothing");
    srv.stop().await;
}

#[tokio::test]
async fn signing_in_again_ends_the_older_session_and_an_idle_session_ends() {
    let srv = TestServer::start(DbKind::Sqlite).await;
    let first = srv.demo_client().await;
    assert_eq!(srv.call(&first, "my_workspaces", &[]).await.status(), StatusCode::OK);
    let second = srv.demo_client().await;
    assert_eq!(srv.call(&first, "my_workspaces", &[]).await.status(), StatusCode::UNAUTHORIZED, "the older session ended");
    assert_eq!(srv.call(&second, "my_workspaces", &[]).await.status(), StatusCode::OK);

    let store = srv.store().await;
    let idle_since = server::db::now() - server::store::SESSION_IDLE_SECS - 1;
    sqlx::query("UPDATE sessions SET last_seen_at = $1").bind(idle_since).execute(store.pool()).await.unwrap();
    assert_eq!(srv.call(&second, "my_workspaces", &[]).await.status(), StatusCode::UNAUTHORIZED, "an idle session ended");
    srv.stop().await;
}

/// Names from a request follow Kubernetes' rules before any API call: a `?` would turn a GET
/// into a LIST, `a/status` reach a subresource.
#[tokio::test]
async fn names_that_break_kubernetes_rules_are_refused_before_any_api_call() {
    let srv = TestServer::start(DbKind::Sqlite).await;
    let http = srv.demo_client().await;
    let long = "a".repeat(300);
    for bad in ["?", "a/status", "..", "A_B", long.as_str()] {
        for (f, form) in [
            ("load_node_progress", vec![("name", bad)]),
            ("load_node_usage", vec![("name", bad), ("range", "Hour")]),
            ("load_node_details", vec![("name", bad)]),
            ("delete_dedicated_node", vec![("name", bad)]),
            ("load_migration_progress", vec![("namespace", "acme-production"), ("name", bad)]),
            ("load_migration_performance", vec![("namespace", "acme-production"), ("name", bad)]),
            ("load_migration_progress", vec![("namespace", bad), ("name", "m")]),
            ("control_migration", vec![("namespace", "acme-production"), ("name", bad), ("action", "Resume")]),
            ("plan_migration", vec![("node", bad), ("workloads", "acme-production/Deployment/web")]),
            ("plan_migration", vec![("node", "n1"), ("workloads", &format!("acme-production/Deployment/{bad}"))]),
        ] {
            let mut with = vec![("workspace", "acme-production")];
            with.extend(form);
            let (status, body) = text(srv.call(&http, f, &with).await).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{f}({bad:?}): {body}");
            assert!(body.contains("is not a valid") || body.contains("is not a workload"), "{f}({bad:?}): {body}");
        }
        let sse = http.get(format!("{}/api/events/w/acme-production/nodes/{}", srv.base, bad.replace('?', "%3F"))).send().await.unwrap();
        assert!(matches!(sse.status(), StatusCode::UNPROCESSABLE_ENTITY | StatusCode::NOT_FOUND), "live stream of {bad:?}: {}", sse.status());
    }
    // A usage range is one of the page's three; anything else is a malformed request.
    for range in ["Forever", "", "Hour; DROP"] {
        let (status, body) = text(srv.call(&http, "load_node_usage", &[("workspace", "acme-production"), ("name", "n1"), ("range", range)]).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "range {range:?}: {body}");
        assert!(body.contains("malformed"), "range {range:?}: {body}");
    }
    srv.stop().await;
}

/// Every server function that changes something checks the caller's role; reading is for all.
#[tokio::test]
async fn roles_decide_who_provisions_migrates_or_only_reads() {
    for kind in backends() {
        let srv = TestServer::start(kind).await;
        let store = srv.store().await;
        let ws = store.workspace_id("acme-production").await.unwrap().unwrap();
        let hash = server::auth::password::hash("role-password").unwrap();
        for role in [Role::Admin, Role::Member, Role::Viewer] {
            let user = store.ensure_user(&format!("role-{}@example.com", role.as_db()), role.as_db(), &hash).await.unwrap();
            store.ensure_membership(&user, &ws, role).await.unwrap();
        }
        type Form = &'static [(&'static str, &'static str)];
        let changes: [(&str, Form, bool, bool, bool); 4] = [
            // (function, form, admin, member, viewer may)
            ("start_provisioning", &[("size", "d9.nope"), ("region", "mars-1")], true, false, false),
            ("delete_dedicated_node", &[("name", "acme-production-000000")], true, false, false),
            ("start_migration", &[("node", "no-such-node"), ("workloads", "acme-production/Deployment/web")], true, true, false),
            ("control_migration", &[("namespace", "acme-production"), ("name", "mig-none"), ("action", "Resume")], true, true, false),
        ];
        let reads: [(&str, Form); 5] = [
            ("load_node_overview", &[]),
            ("notifications", &[]),
            ("load_wizard", &[]),
            ("load_migration_screen", &[]),
            ("estimate_size", &[("size", "d4.xlarge")]),
        ];
        for (role, column) in [(Role::Admin, 0), (Role::Member, 1), (Role::Viewer, 2)] {
            let http = srv.new_client();
            let r = srv.sign_in(&http, &format!("role-{}@example.com", role.as_db()), "role-password").await;
            assert!(r.status().is_success() || r.status().is_redirection(), "{role:?} signs in: {}", r.text().await.unwrap());
            for (f, form, admin, member, viewer) in changes {
                let may = [admin, member, viewer][column];
                let mut with = vec![("workspace", "acme-production")];
                with.extend_from_slice(form);
                let (status, body) = text(srv.call(&http, f, &with).await).await;
                if may {
                    assert_ne!(status, StatusCode::FORBIDDEN, "{kind:?} {role:?} may {f}: {body}");
                } else {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{kind:?} {role:?} may not {f}: {body}");
                    assert!(body.contains(&format!("({})", role.as_db())), "{body}");
                }
            }
            for (f, form) in reads {
                let mut with = vec![("workspace", "acme-production")];
                with.extend_from_slice(form);
                let (status, body) = text(srv.call(&http, f, &with).await).await;
                assert!(status.is_success(), "{kind:?} {role:?} reads {f}: {status} {body}");
            }
        }
        let audit = store.audit_entries(None).await.unwrap();
        assert!(!audit.iter().any(|e| e.action == "provision-dedicated-node" || e.action == "start-migration"), "nothing refused was started");
        srv.stop().await;
    }
}

#[test]
fn cookies_are_secure_unless_the_server_listens_on_loopback() {
    use clap::Parser;
    let config = |listen: &str| server::config::Config::parse_from(["server", "--listen", listen]);
    assert!(config("0.0.0.0:3000").cookies_secure());
    assert!(!config("127.0.0.1:3000").cookies_secure());
    let forced = server::config::Config::parse_from(["server", "--listen", "0.0.0.0:3000", "--secure-cookies", "false"]);
    assert!(!forced.cookies_secure());
}

/// A live stream is a held connection and a watch on the API server: one session may hold
/// only a few, and they end with the session (signed out here, or replaced by a sign-in
/// elsewhere), not when the tab is closed some day.
#[tokio::test]
async fn live_streams_are_bounded_per_session_and_end_with_it() {
    use kube::api::{Api, DeleteParams, PostParams};
    use server::crd::{DedicatedNode, DedicatedNodeSpec};
    use server::live::STREAMS_PER_SESSION;

    let srv = TestServer::start(DbKind::Sqlite).await;
    let client = support::cluster::client().await;
    server::engine::install::ensure_platform(client.clone()).await.expect("platform installed");
    // A node of the demo workspace that nothing provisions (no engine runs): never settled.
    let node = support::cluster::name("t-live");
    let mut dn = DedicatedNode::new(
        &node,
        DedicatedNodeSpec {
            workspace: "acme-production".into(),
            size: "d2.large".into(),
            region: "ap-northeast-1".into(),
            requested_by: "dev@example.com".into(),
        },
    );
    dn.metadata.labels = Some([("hexabase.ai/workspace".to_string(), "acme-production".to_string())].into());
    let orders: Api<DedicatedNode> = Api::all(client.clone());
    orders.create(&PostParams::default(), &dn).await.unwrap();

    let url = format!("{}/api/events/w/acme-production/nodes/{node}", srv.base);
    // Open, and read the first event: the stream is being served.
    let open = |http: reqwest::Client| {
        let url = url.clone();
        async move {
            let mut r = http.get(&url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let first = r.chunk().await.unwrap().expect("a first event");
            assert!(String::from_utf8_lossy(&first).contains("event: progress"));
            r
        }
    };
    // Ends within a few seconds (its rest is read and dropped).
    let ends = |mut r: reqwest::Response| async move {
        let rest = tokio::time::timeout(std::time::Duration::from_secs(5), async { while let Ok(Some(_)) = r.chunk().await {} });
        rest.await.is_ok()
    };

    let http = srv.demo_client().await;
    let mut streams = Vec::new();
    for _ in 0..STREAMS_PER_SESSION {
        streams.push(open(http.clone()).await);
    }
    let over = http.get(&url).send().await.unwrap();
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS, "one stream over the bound");
    drop(streams.pop());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    streams.push(open(http.clone()).await);

    // Signing out ends every stream of the session.
    let (status, _) = text(srv.call(&http, "sign_out", &[]).await).await;
    assert!(status.is_success() || status.is_redirection(), "{status}");
    for body in streams {
        assert!(ends(body).await, "a stream outlived its session's sign-out");
    }

    // Signing in again somewhere else ends the streams of the session it replaces.
    let first_browser = srv.demo_client().await;
    let stream = open(first_browser).await;
    let _second_browser = srv.demo_client().await;
    assert!(ends(stream).await, "a stream outlived the session a new sign-in replaced");

    let _ = orders.delete(&node, &DeleteParams::default()).await;
    srv.stop().await;
}
