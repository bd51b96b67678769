//! A dedicated node's usage over time (use case step 16: "dedicated node monitoring"), as
//! Prometheus has it, next to what the node offers and what its pods asked for.

use serde::{Deserialize, Serialize};

/// How far back a usage chart looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum UsageRange {
    #[default]
    Hour,
    Day,
    Week,
}

impl UsageRange {
    pub const ALL: [UsageRange; 3] = [UsageRange::Hour, UsageRange::Day, UsageRange::Week];

    pub fn label(self) -> &'static str {
        match self {
            UsageRange::Hour => "1 h",
            UsageRange::Day => "24 h",
            UsageRange::Week => "7 d",
        }
    }

    /// How the range reads in a sentence: "over the last hour".
    pub fn phrase(self) -> &'static str {
        match self {
            UsageRange::Hour => "over the last hour",
            UsageRange::Day => "over the last 24 hours",
            UsageRange::Week => "over the last 7 days",
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            UsageRange::Hour => 3_600,
            UsageRange::Day => 86_400,
            UsageRange::Week => 7 * 86_400,
        }
    }

    /// One point per step: 240 (1 h), 288 (24 h) and 336 (7 d) points.
    pub fn step_seconds(self) -> i64 {
        match self {
            UsageRange::Hour => 15,
            UsageRange::Day => 300,
            UsageRange::Week => 1_800,
        }
    }
}

/// One resource of a node over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageSeries {
    /// "CPU", "Memory".
    pub label: String,
    /// "vCPU", "GiB".
    pub unit: String,
    /// `(unix seconds, used)`, in time order; a gap where Prometheus had no data.
    pub points: Vec<(i64, f64)>,
    /// What the node offers to pods.
    pub allocatable: f64,
    /// What the pods on it requested (what the scheduler counts).
    pub requested: f64,
}

impl UsageSeries {
    pub fn latest(&self) -> Option<f64> {
        self.points.last().map(|p| p.1)
    }

    pub fn peak(&self) -> Option<f64> {
        self.points.iter().map(|p| p.1).reduce(f64::max)
    }

    /// The top of the chart: the node's allocatable, or more if usage or requests ever went
    /// above it (they can, for a moment, and a chart must not cut them off).
    pub fn scale(&self) -> f64 {
        let top = self.peak().unwrap_or(0.0).max(self.requested).max(self.allocatable);
        if top > 0.0 {
            top
        } else {
            1.0
        }
    }
}

/// What the dedicated node page charts for one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeUsage {
    pub range: UsageRange,
    /// Unix seconds the chart spans.
    pub start: i64,
    pub end: i64,
    pub cpu: UsageSeries,
    pub memory: UsageSeries,
    /// Why there is no history to show (no metrics source configured, Prometheus not
    /// answering, the node not there yet); the allocatable and requested numbers still are.
    pub unavailable: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_fits_whatever_is_highest() {
        let mut s = UsageSeries { label: "CPU".into(), unit: "vCPU".into(), points: vec![(0, 0.5), (15, 1.5)], allocatable: 2.0, requested: 1.0 };
        assert_eq!(s.scale(), 2.0);
        assert_eq!((s.latest(), s.peak()), (Some(1.5), Some(1.5)));
        s.points.push((30, 2.5));
        assert_eq!(s.scale(), 2.5);
        let empty = UsageSeries { points: vec![], allocatable: 0.0, requested: 0.0, ..s };
        assert_eq!((empty.scale(), empty.latest()), (1.0, None));
    }
}
