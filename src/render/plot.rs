//! Line charts on logarithmic axes for the cost and dilution panels: the
//! geometry only (pixel positions, SVG path data, tick values), so the UI
//! draws SVG elements from numbers and never builds markup from strings.

use crate::engine::rank::{self, Direction};

/// A logarithmic axis mapping `[lo, hi]` (both > 0) onto pixels `[px0, px1]`
/// (px1 < px0 for a y axis that grows upwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogAxis {
    pub lo: f64,
    pub hi: f64,
    pub px0: f64,
    pub px1: f64,
}

impl LogAxis {
    /// An axis spanning `values` (non-positive values ignored): exactly their
    /// range when it covers a decade or more (so an axis ends at, say, a
    /// model's context of 128 and not at 1,000), otherwise widened to the
    /// nearest 1–2–5 values around it.
    pub fn fit(values: impl IntoIterator<Item = f64>, px0: f64, px1: f64) -> Self {
        let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
        for v in values.into_iter().filter(|v| *v > 0.0 && v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            (lo, hi) = (1.0, 10.0);
        }
        if hi < lo * 10.0 {
            lo = nice(lo, false);
            hi = nice(hi, true).max(lo * 2.0);
        }
        Self { lo, hi, px0, px1 }
    }

    /// The pixel of `v` (clamped into the axis).
    pub fn at(&self, v: f64) -> f64 {
        let v = v.clamp(self.lo, self.hi);
        let f = (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10());
        self.px0 + f * (self.px1 - self.px0)
    }

    /// Round values inside the axis, at most `max` of them: 1, 2, 5 × 10ⁿ
    /// where they fit, else powers of ten (every other one, … when there are more).
    pub fn ticks(&self, max: usize) -> Vec<f64> {
        let max = max.max(2);
        let inside = |v: &f64| *v >= self.lo * (1.0 - 1e-9) && *v <= self.hi * (1.0 + 1e-9);
        let (a, b) = (self.lo.log10().floor() as i32, self.hi.log10().ceil() as i32);
        let decades: Vec<f64> = (a..=b).map(|e| 10f64.powi(e)).filter(inside).collect();
        let one_two_five: Vec<f64> =
            (a..=b).flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e))).filter(inside).collect();
        if one_two_five.len() <= max {
            return one_two_five;
        }
        let step = decades.len().div_ceil(max).max(1);
        decades.into_iter().step_by(step).collect()
    }
}

/// The 1–2–5 value at or below (`up` false) or at or above (`up` true) `v` > 0.
fn nice(v: f64, up: bool) -> f64 {
    let e = v.log10().floor();
    let base = 10f64.powf(e);
    let steps = [1.0, 2.0, 5.0, 10.0];
    let m = v / base;
    let pick = if up {
        steps.iter().copied().find(|&s| s >= m * (1.0 - 1e-12)).unwrap_or(10.0)
    } else {
        steps.iter().copied().rev().find(|&s| s <= m * (1.0 + 1e-12)).unwrap_or(1.0)
    };
    pick * base
}

/// Places labels along a line (a chart's top edge) so none overlaps another:
/// each `(anchor, width)` in pixels starts just right of its anchor (or ends
/// just left of it where it would run past `right`), in the first row where
/// it clears every label already there. Returns each label's left edge and row.
pub fn stack_labels(spans: &[(f64, f64)], left: f64, right: f64) -> Vec<(f64, usize)> {
    const GAP: f64 = 6.0;
    let mut rows: Vec<Vec<(f64, f64)>> = Vec::new();
    let anchors: Vec<f64> = spans.iter().map(|s| s.0).collect();
    let order = rank::order(&anchors, Direction::Ascending);
    let mut out = vec![(0.0, 0); spans.len()];
    for i in order {
        let (anchor, width) = spans[i];
        let start = if anchor + 3.0 + width > right { (anchor - 3.0 - width).max(left) } else { anchor + 3.0 };
        let (a, b) = (start, start + width);
        let row = rows.iter().position(|r| r.iter().all(|&(c, d)| b + GAP <= c || a >= d + GAP)).unwrap_or(rows.len());
        if row == rows.len() {
            rows.push(Vec::new());
        }
        rows[row].push((a, b));
        out[i] = (start, row);
    }
    out
}

/// A linear axis, for weights in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearAxis {
    pub lo: f64,
    pub hi: f64,
    pub px0: f64,
    pub px1: f64,
}

impl LinearAxis {
    pub fn at(&self, v: f64) -> f64 {
        let f = (v.clamp(self.lo, self.hi) - self.lo) / (self.hi - self.lo).max(1e-12);
        self.px0 + f * (self.px1 - self.px0)
    }
}

/// SVG path data through the points, skipping non-finite ones.
pub fn path(points: impl IntoIterator<Item = (f64, f64)>) -> String {
    let mut d = String::new();
    for (x, y) in points.into_iter().filter(|(x, y)| x.is_finite() && y.is_finite()) {
        d.push_str(&format!("{}{x:.1} {y:.1}", if d.is_empty() { "M" } else { " L" }));
    }
    d
}

/// `1234567` → "1.2M", `2048` → "2k": short labels for ticks and tooltips.
pub fn short(v: f64) -> String {
    let a = v.abs();
    let (x, unit) = match a {
        a if a >= 1e12 => (v / 1e12, "T"),
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let s = if x.abs() >= 100.0 || (x.fract() == 0.0) { format!("{x:.0}") } else { format!("{x:.1}") };
    format!("{s}{unit}")
}

/// Okabe–Ito: distinguishable with every common colour-vision deficiency.
const HEAD_COLOURS: [&str; 8] =
    ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"];

/// The colour of attention head `head` wherever heads are told apart by colour.
pub fn head_colour(head: usize) -> &'static str {
    HEAD_COLOURS[head % HEAD_COLOURS.len()]
}

/// Past eight heads the colours come round again: each round of them has its
/// own dash pattern (`None`: solid), so heads 0 and 8 still look different.
pub fn head_dash(head: usize) -> Option<&'static str> {
    const DASHES: [Option<&str>; 4] = [None, Some("6 3"), Some("2 2"), Some("8 2 2 2")];
    DASHES[(head / HEAD_COLOURS.len()) % DASHES.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_sharing_a_colour_differ_in_dashes() {
        for head in 0..32 {
            for other in head + 1..32 {
                assert!(
                    (head_colour(head), head_dash(head)) != (head_colour(other), head_dash(other)),
                    "heads {head} and {other} look alike"
                );
            }
        }
        assert_eq!(head_dash(3), None);
    }

    #[test]
    fn log_axis_maps_decades_evenly_and_fits_whole_decades() {
        let a = LogAxis::fit([1.0, 10_000.0], 0.0, 400.0);
        assert_eq!((a.lo, a.hi), (1.0, 10_000.0));
        assert_eq!(a.at(1.0), 0.0);
        assert_eq!(a.at(100.0), 200.0);
        assert_eq!(a.at(10_000.0), 400.0);
        assert_eq!(a.at(1e9), 400.0, "clamped");
        assert_eq!(a.ticks(5), vec![1.0, 10.0, 100.0, 1000.0, 10_000.0]);
        assert_eq!(a.ticks(3).len(), 3);
        assert_eq!(a.ticks(100).len(), 13, "1, 2, 5 in each decade where they fit");
        let y = LogAxis::fit([0.0, -1.0], 200.0, 0.0);
        assert_eq!((y.lo, y.hi), (1.0, 10.0), "no positive value: a default decade");
    }

    #[test]
    fn an_axis_ends_where_its_data_ends() {
        // The dilution chart: T from 8 to the model's context of 128, not to 1,000.
        let x = LogAxis::fit([8.0, 16.0, 128.0], 0.0, 400.0);
        assert_eq!((x.lo, x.hi), (8.0, 128.0));
        assert_eq!(x.ticks(8), vec![10.0, 20.0, 50.0, 100.0]);
        // Less than a decade: widened to round values.
        let y = LogAxis::fit([3.0, 7.0], 0.0, 400.0);
        assert_eq!((y.lo, y.hi), (2.0, 10.0));
    }

    #[test]
    fn stacked_labels_never_overlap_and_stay_inside() {
        // "now: T = 31" and "context 128" close together, as in the cost chart.
        let spans = [(300.0, 70.0), (310.0, 75.0), (120.0, 90.0), (515.0, 60.0)];
        let placed = stack_labels(&spans, 50.0, 520.0);
        for (i, &(a, ra)) in placed.iter().enumerate() {
            assert!(a >= 50.0 && a + spans[i].1 <= 520.0 + 1e-9, "label {i} inside: {placed:?}");
            for (j, &(b, rb)) in placed.iter().enumerate().skip(i + 1) {
                let apart = a + spans[i].1 <= b || b + spans[j].1 <= a;
                assert!(ra != rb || apart, "labels {i} and {j} overlap: {placed:?}");
            }
        }
        assert_eq!(placed[2].1, 0, "a label with room stays in the first row");
        assert!(placed[3].0 < 515.0, "a label at the right edge ends left of its marker");
    }

    #[test]
    fn quadratic_growth_is_twice_as_steep_as_linear_on_log_axes() {
        let x = LogAxis { lo: 1.0, hi: 1e4, px0: 0.0, px1: 400.0 };
        let y = LogAxis { lo: 1.0, hi: 1e8, px0: 400.0, px1: 0.0 };
        let slope = |f: fn(f64) -> f64| (y.at(f(1000.0)) - y.at(f(10.0))) / (x.at(1000.0) - x.at(10.0));
        let (lin, quad) = (slope(|t| t), slope(|t| t * t));
        assert!((quad / lin - 2.0).abs() < 1e-9);
    }

    #[test]
    fn paths_and_labels() {
        assert_eq!(path([(0.0, 1.0), (f64::NAN, 2.0), (3.0, 4.5)]), "M0.0 1.0 L3.0 4.5");
        assert_eq!(short(1_234_567.0), "1.2M");
        assert_eq!(short(2048.0), "2.0k");
        assert_eq!(short(5.0), "5");
        assert_eq!(LinearAxis { lo: 0.0, hi: 1.0, px0: 100.0, px1: 0.0 }.at(0.25), 75.0);
    }
}
