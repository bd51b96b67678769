//! Numbers, money, counts and times as people read them. Pure functions, the same on the server
//! and in the browser, so a server-rendered page and its hydrated form say the same thing.

/// A resource amount: at most one decimal, no trailing ".0".
pub fn format_amount(v: f64) -> String {
    let rounded = (v * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{}", rounded as i64)
    } else {
        format!("{rounded:.1}")
    }
}

/// US dollars: "$1,234.56".
pub fn format_usd(v: f64) -> String {
    let cents = (v * 100.0).round() as i64;
    let (whole, frac) = (cents / 100, (cents % 100).abs());
    let digits = whole.abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{}${grouped}.{frac:02}", if whole < 0 { "-" } else { "" })
}

/// "1 workload", "3 workloads": a count with its noun in the right number. `plural` is the
/// noun's plural form for the irregular ones ("replica" → "replicas" is the default rule).
pub fn count(n: impl Into<i64>, singular: &str, plural: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// "45s", "12m", "3h", "2d": the age column of kubectl.
pub fn format_age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// How long a step took: "0.8 s", "12 s", "2 min 5 s", "1 h 3 min".
pub fn format_duration_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 10_000 {
        return format!("{:.1} s", ms as f64 / 1000.0);
    }
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// "just now", "5 minutes ago", "3 hours ago", "2 days ago": when something happened.
pub fn format_ago(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=59 => "just now".into(),
        60..=3599 => format!("{} ago", count(s / 60, "minute", "minutes")),
        3600..=86_399 => format!("{} ago", count(s / 3600, "hour", "hours")),
        _ => format!("{} ago", count(s / 86_400, "day", "days")),
    }
}

/// A UTC time of day with seconds, "14:05:09 UTC": what the server renders before the browser
/// puts the reader's own time zone in its place.
pub fn format_utc_time(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02} UTC", secs / 3600, (secs % 3600) / 60, secs % 60)
}

/// A UTC calendar day, "28 Nov 2026" (days from the epoch to the civil date, proleptic
/// Gregorian: H. Hinnant's `civil_from_days`).
pub fn format_utc_date(unix_ms: i64) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let z = unix_ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{day} {} {year}", MONTHS[(month - 1) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_drop_needless_decimals() {
        assert_eq!(format_amount(2.0), "2");
        assert_eq!(format_amount(2.25), "2.3");
        assert_eq!(format_amount(0.5), "0.5");
    }

    #[test]
    fn dollars_are_grouped_with_cents() {
        assert_eq!(format_usd(1234.5), "$1,234.50");
        assert_eq!(format_usd(73.0), "$73.00");
        assert_eq!(format_usd(1_000_000.0), "$1,000,000.00");
    }

    #[test]
    fn counts_use_the_right_number() {
        assert_eq!(count(1, "workload", "workloads"), "1 workload");
        assert_eq!(count(0, "workload", "workloads"), "0 workloads");
        assert_eq!(count(2u32, "other workspace", "other workspaces"), "2 other workspaces");
    }

    #[test]
    fn ages_and_durations_read_naturally() {
        assert_eq!(format_age(5), "5s");
        assert_eq!(format_age(125), "2m");
        assert_eq!(format_age(7200), "2h");
        assert_eq!(format_age(200_000), "2d");
        assert_eq!(format_duration_ms(812), "0.8 s");
        assert_eq!(format_duration_ms(12_400), "12 s");
        assert_eq!(format_duration_ms(125_000), "2 min 5 s");
        assert_eq!(format_ago(30), "just now");
        assert_eq!(format_ago(60), "1 minute ago");
        assert_eq!(format_ago(7300), "2 hours ago");
        assert_eq!(format_utc_time(1_764_252_309_000), "14:05:09 UTC");
        assert_eq!(format_utc_date(1_764_252_309_000), "27 Nov 2025");
        assert_eq!(format_utc_date(0), "1 Jan 1970");
        assert_eq!(format_utc_date(951_782_400_000), "29 Feb 2000");
        assert_eq!(format_utc_date(1_798_761_599_000), "31 Dec 2026");
    }
}
