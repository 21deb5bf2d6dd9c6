//! Line charts on logarithmic axes for the cost and dilution panels: the
//! geometry only (pixel positions, SVG path data, tick values), so the UI
//! draws SVG elements from numbers and never builds markup from strings.

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
    /// An axis spanning `values` (non-positive values ignored), widened to whole powers of ten.
    pub fn fit(values: impl IntoIterator<Item = f64>, px0: f64, px1: f64) -> Self {
        let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
        for v in values.into_iter().filter(|v| *v > 0.0 && v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            (lo, hi) = (1.0, 10.0);
        }
        let lo = 10f64.powf(lo.log10().floor());
        let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
        Self { lo, hi, px0, px1 }
    }

    /// The pixel of `v` (clamped into the axis).
    pub fn at(&self, v: f64) -> f64 {
        let v = v.clamp(self.lo, self.hi);
        let f = (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10());
        self.px0 + f * (self.px1 - self.px0)
    }

    /// Powers of ten inside the axis, at most `max` of them (every other one, … when there are more).
    pub fn ticks(&self, max: usize) -> Vec<f64> {
        let (a, b) = (self.lo.log10().round() as i32, self.hi.log10().round() as i32);
        let all: Vec<f64> = (a..=b).map(|e| 10f64.powi(e)).collect();
        let step = all.len().div_ceil(max.max(1)).max(1);
        all.into_iter().step_by(step).collect()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axis_maps_decades_evenly_and_fits_whole_decades() {
        let a = LogAxis::fit([3.0, 4000.0], 0.0, 400.0);
        assert_eq!((a.lo, a.hi), (1.0, 10_000.0));
        assert_eq!(a.at(1.0), 0.0);
        assert_eq!(a.at(100.0), 200.0);
        assert_eq!(a.at(10_000.0), 400.0);
        assert_eq!(a.at(1e9), 400.0, "clamped");
        assert_eq!(a.ticks(10), vec![1.0, 10.0, 100.0, 1000.0, 10_000.0]);
        assert_eq!(a.ticks(3).len(), 3);
        let y = LogAxis::fit([0.0, -1.0], 200.0, 0.0);
        assert_eq!((y.lo, y.hi), (1.0, 10.0), "no positive value: a default decade");
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
