//! The one request gate. For every request it
//! 1. refuses state-changing requests that do not come from this site (CSRF defence by
//!    Origin/Referer, which browsers set on every cross-site POST),
//! 2. resolves the session cookie into a `SessionUser` in the request's extensions, where
//!    server functions read it, and
//! 3. sends a signed-out visit to any page (not assets, health or API) to the sign-in page.

use std::net::{IpAddr, SocketAddr};

use app::backend::{ClientAddr, SessionToken, SESSION_COOKIE};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use http::{header, HeaderMap, Method, StatusCode};

use crate::state::AppState;

/// Paths served without a session. Everything else is a page that needs one, or an API that
/// checks the session itself and answers 401.
fn is_public(path: &str) -> bool {
    matches!(path, "/login" | "/healthz" | "/readyz" | "/metrics" | "/site.css" | "/favicon.svg") || path.starts_with("/pkg/") || path.starts_with("/api/")
}

/// The value of the request's cookie `name` (empty values count as absent).
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie::Cookie::split_parse(v).filter_map(Result::ok))
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// True when the request's Origin (or, lacking it, Referer) names the host it was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
    let source = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER)).and_then(|v| v.to_str().ok());
    source.and_then(host_of).is_some_and(|h| h.eq_ignore_ascii_case(host))
}

/// Who is asking: the peer, unless the peer is a trusted proxy; then the nearest address in
/// `X-Forwarded-For` (read from the right) that is not a trusted proxy itself. A client can
/// put anything at the left of that header, so only the hops our own proxies appended count.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> =
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).filter_map(|h| h.trim().parse().ok()).collect();
    hops.into_iter().rev().find(|ip| !is_trusted(ip)).unwrap_or(peer)
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub async fn gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if changes_state(req.method()) && !same_origin(req.headers()) {
        return (StatusCode::FORBIDDEN, "Cross-site request refused: the Origin header must name this site.").into_response();
    }

    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        let ip = client_ip(addr.ip(), req.headers(), &state.trusted_proxies);
        req.extensions_mut().insert(ClientAddr(ip.to_string()));
    }

    let token = cookie(req.headers(), SESSION_COOKIE);
    let mut signed_in = false;
    if let Some(token) = token {
        match state.store.session_user(&token).await {
            Ok(Some(user)) => {
                signed_in = true;
                req.extensions_mut().insert(user);
                req.extensions_mut().insert(SessionToken(token));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                return (StatusCode::SERVICE_UNAVAILABLE, "The session store is unavailable; try again shortly.").into_response();
            }
        }
    }

    let path = req.uri().path();
    if req.method() == Method::GET {
        if path == "/login" && signed_in {
            return Redirect::to("/").into_response();
        }
        if !signed_in && !is_public(path) {
            let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let next = if target == "/" { String::new() } else { format!("?next={}", urlencode(target)) };
            return Redirect::to(&format!("/login{next}")).into_response();
        }
    }
    next.run(req).await
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn origin_must_match_host() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:3000"), ("origin", "http://127.0.0.1:3000")])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:3000"), ("origin", "http://evil.example")])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:3000"), ("origin", "http://127.0.0.1:3000.evil.example")])));
        assert!(same_origin(&headers(&[("host", "a:1"), ("referer", "http://a:1/w/x/nodes?y")])));
        assert!(!same_origin(&headers(&[("host", "a:1")])), "no Origin and no Referer is refused");
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        let h = headers(&[("cookie", "theme=dark; hx_session=abc; other=1")]);
        assert_eq!(cookie(&h, "hx_session").as_deref(), Some("abc"));
        assert_eq!(cookie(&headers(&[("cookie", "hx_session=")]), "hx_session"), None);
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.2.3")]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_ip(ip("10.9.9.9"), &h, &trusted), ip("203.0.113.7"), "the nearest untrusted hop, not the client's own claim");
        assert_eq!(client_ip(ip("198.51.100.1"), &h, &trusted), ip("198.51.100.1"), "an untrusted peer is itself");
        assert_eq!(client_ip(ip("10.9.9.9"), &h, &[]), ip("10.9.9.9"), "without trusted proxies the header is ignored");
        assert_eq!(client_ip(ip("10.9.9.9"), &headers(&[]), &trusted), ip("10.9.9.9"));
    }

    #[test]
    fn next_is_encoded() {
        assert_eq!(urlencode("/w/a b?x=1"), "/w/a%20b%3Fx%3D1");
    }
}
