//! Who is asking: password hashing, login rate limiting, and the middleware that resolves the
//! session cookie, refuses cross-site writes and sends signed-out page visits to sign-in.

pub mod middleware;
pub mod password;
pub mod rate_limit;
