//! Percentiles over sorted samples, and the result table.

use std::time::Duration;

/// Latency samples of one measurement.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Nearest-rank percentile (`p` in 0..=100); zero when empty.
    pub fn pct(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let mut v = self.0.clone();
        v.sort();
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    pub fn p50(&self) -> Duration {
        self.pct(50.0)
    }
    pub fn p95(&self) -> Duration {
        self.pct(95.0)
    }
    pub fn p99(&self) -> Duration {
        self.pct(99.0)
    }

    /// `p50 / p95 / p99` in milliseconds.
    pub fn summary(&self) -> String {
        format!(
            "{} / {} / {}",
            ms(self.p50()),
            ms(self.p95()),
            ms(self.p99())
        )
    }
}

impl FromIterator<Duration> for Samples {
    fn from_iter<I: IntoIterator<Item = Duration>>(iter: I) -> Self {
        Samples(iter.into_iter().collect())
    }
}

/// Milliseconds with a precision that suits the magnitude.
pub fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m < 10.0 {
        format!("{m:.2} ms")
    } else if m < 100.0 {
        format!("{m:.1} ms")
    } else {
        format!("{m:.0} ms")
    }
}

pub fn ratio(a: Duration, b: Duration) -> f64 {
    if b.is_zero() {
        f64::NAN
    } else {
        a.as_secs_f64() / b.as_secs_f64()
    }
}

/// Signed difference `a - b` in milliseconds, e.g. `+0.12 ms`.
pub fn delta_ms(a: Duration, b: Duration) -> String {
    let d = (a.as_secs_f64() - b.as_secs_f64()) * 1000.0;
    format!("{d:+.2} ms")
}

/// Whether a row has a target, and whether it was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    NotMet,
    NoTarget,
    NotMeasured,
}

impl Verdict {
    pub fn of(ok: bool) -> Verdict {
        if ok {
            Verdict::Met
        } else {
            Verdict::NotMet
        }
    }
    fn cell(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::NotMet => "**not met**",
            Verdict::NoTarget => "",
            Verdict::NotMeasured => "n/a",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub metric: String,
    pub studio: String,
    pub baseline: String,
    pub compare: String,
    pub target: String,
    pub verdict: Verdict,
}

impl Row {
    pub fn new(
        metric: impl Into<String>,
        studio: impl Into<String>,
        baseline: impl Into<String>,
    ) -> Row {
        Row {
            metric: metric.into(),
            studio: studio.into(),
            baseline: baseline.into(),
            compare: String::new(),
            target: String::new(),
            verdict: Verdict::NoTarget,
        }
    }
    pub fn compare(mut self, c: impl Into<String>) -> Row {
        self.compare = c.into();
        self
    }
    pub fn target(mut self, t: impl Into<String>, v: Verdict) -> Row {
        self.target = t.into();
        self.verdict = v;
        self
    }
    /// A row for a measurement this run could not make.
    pub fn missing(
        metric: impl Into<String>,
        why: impl Into<String>,
        target: impl Into<String>,
    ) -> Row {
        Row::new(metric, "n/a", why).target(target, Verdict::NotMeasured)
    }
}

pub fn markdown(rows: &[Row]) -> String {
    let mut out =
        String::from("| Metric | Claude Studio | Baseline | Ratio / Δ | Target | Met |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.metric,
            r.studio,
            r.baseline,
            r.compare,
            r.target,
            r.verdict.cell()
        ));
    }
    out
}
