//! How the moved workloads performed before and after their move (use case step 16: "verifies
//! application performance on the new dedicated resources"): p95 latency and CPU used over
//! time around the migration, with the averages before and after. "Improved" is said only
//! when the numbers show it.

use serde::{Deserialize, Serialize};

use super::WorkloadKey;

/// A change smaller than this share of the before value is "no clear change".
pub const CLEAR_CHANGE: f64 = 0.10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationPerformance {
    /// Unix seconds the charts span: from before the migration started to now (or a day
    /// after it finished).
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub workloads: Vec<WorkloadPerformance>,
    /// Why there is nothing to chart (no metrics source, Prometheus not answering).
    pub unavailable: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadPerformance {
    pub key: WorkloadKey,
    /// When its move started and finished, unix seconds (the band on the charts).
    pub moved_from: i64,
    pub moved_to: i64,
    pub latency: Trend,
    pub cpu: Trend,
}

/// One measure over time, and its averages before the move and after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// "p95 latency", "CPU use".
    pub label: String,
    /// "ms", "vCPU".
    pub unit: String,
    /// (unix seconds, value), in time order.
    pub points: Vec<(i64, f64)>,
    pub before: Option<f64>,
    pub after: Option<f64>,
}

/// What the numbers say about a measure where lower is better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Lower by this share of before (0.77 = 77 % lower).
    Improved(f64),
    /// Higher by this share of before.
    Worse(f64),
    NoClearChange,
    /// No numbers before or after the move.
    NotMeasured,
}

impl Trend {
    /// The averages of the points before `moved_from` and after `settled` (the move's end plus
    /// a rate window, so that the after does not average in the move itself).
    pub fn of(label: &str, unit: &str, points: Vec<(i64, f64)>, moved_from: i64, settled: i64) -> Self {
        let mean = |vs: Vec<f64>| (!vs.is_empty()).then(|| vs.iter().sum::<f64>() / vs.len() as f64);
        let before = mean(points.iter().filter(|(t, _)| *t < moved_from).map(|(_, v)| *v).collect());
        let after = mean(points.iter().filter(|(t, _)| *t >= settled).map(|(_, v)| *v).collect());
        Self { label: label.into(), unit: unit.into(), points, before, after }
    }

    /// Lower is better (latency): improved or worse only beyond [`CLEAR_CHANGE`].
    pub fn verdict(&self) -> Verdict {
        match (self.before, self.after) {
            (Some(b), Some(a)) if b > 0.0 => {
                let change = (a - b) / b;
                if change <= -CLEAR_CHANGE {
                    Verdict::Improved(-change)
                } else if change >= CLEAR_CHANGE {
                    Verdict::Worse(change)
                } else {
                    Verdict::NoClearChange
                }
            }
            _ => Verdict::NotMeasured,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trend(before: &[f64], after: &[f64]) -> Trend {
        let points = before.iter().enumerate().map(|(i, v)| (i as i64, *v)).chain(after.iter().enumerate().map(|(i, v)| (100 + i as i64, *v))).collect();
        Trend::of("p95 latency", "ms", points, 50, 100)
    }

    #[test]
    fn before_and_after_are_averaged_apart_from_the_move() {
        let t = Trend::of("x", "ms", vec![(10, 100.0), (20, 200.0), (55, 999.0), (70, 40.0), (80, 20.0)], 50, 70);
        assert_eq!((t.before, t.after), (Some(150.0), Some(30.0)), "the point during the move counts for neither");
    }

    #[test]
    fn improved_is_said_only_when_the_numbers_show_it() {
        assert_eq!(trend(&[160.0, 170.0], &[40.0, 36.0]).verdict(), Verdict::Improved(1.0 - 38.0 / 165.0));
        assert_eq!(trend(&[40.0], &[42.0]).verdict(), Verdict::NoClearChange, "5 % is noise");
        assert!(matches!(trend(&[40.0], &[60.0]).verdict(), Verdict::Worse(w) if (w - 0.5).abs() < 1e-9));
        assert_eq!(trend(&[], &[40.0]).verdict(), Verdict::NotMeasured, "no before, no claim");
        assert_eq!(trend(&[40.0], &[]).verdict(), Verdict::NotMeasured);
    }
}
