//! Times as the custom resources store them (RFC 3339) and as requeues compare them.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// An RFC 3339 time as unix milliseconds (what the wire types carry).
pub fn unix_ms(s: &str) -> Option<i64> {
    parse_rfc3339(s).map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Shortest wins: a reconcile that waits on several things looks again at the soonest.
pub fn sooner(a: Option<Duration>, b: Duration) -> Option<Duration> {
    Some(a.map_or(b, |a| a.min(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_convert_to_milliseconds() {
        let t = parse_rfc3339("2026-11-27T12:15:40.878930773Z").unwrap();
        assert_eq!(unix_ms(&rfc3339(t)), Some(1_795_781_740_878));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn shortest_requeue_wins() {
        let d = sooner(None, Duration::from_secs(5));
        assert_eq!(sooner(d, Duration::from_secs(1)), Some(Duration::from_secs(1)));
        assert_eq!(sooner(Some(Duration::from_secs(1)), Duration::from_secs(9)), Some(Duration::from_secs(1)));
    }
}
