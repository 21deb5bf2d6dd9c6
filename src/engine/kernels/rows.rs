//! Row-wise helpers written so the compiler vectorises them (independent
//! lanes, fixed-width chunks): SSE natively, simd128 in wasm. Each equals its
//! `ops` reference up to the order of float additions.

use crate::model::Activation;

const LANES: usize = 8;

/// `Σ a[i]·b[i]` with eight partial sums.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ a[i]` with eight partial sums.
fn sum(a: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = a.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for x in chunks {
        for l in 0..LANES {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// [`crate::engine::ops::layernorm`], vectorised.
pub fn layernorm(x: &[f32], gain: &[f32], bias: &[f32], d: usize, eps: f32) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    let (gain, bias) = (&gain[..d], &bias[..d]);
    for (row_in, row_out) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let mean = sum(row_in) / d as f32;
        for (o, &v) in row_out.iter_mut().zip(row_in) {
            *o = v - mean;
        }
        let var = dot(row_out, row_out) / d as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((o, &g), &b) in row_out.iter_mut().zip(gain).zip(bias) {
            *o = *o * inv * g + b;
        }
    }
    y
}

/// [`crate::engine::ops::rmsnorm`], vectorised.
pub fn rmsnorm(x: &[f32], gain: &[f32], d: usize, eps: f32) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    let gain = &gain[..d];
    for (row_in, row_out) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let inv = 1.0 / (dot(row_in, row_in) / d as f32 + eps).sqrt();
        for ((o, &v), &g) in row_out.iter_mut().zip(row_in).zip(gain) {
            *o = v * inv * g;
        }
    }
    y
}

/// [`crate::engine::ops::swiglu`] with the vectorised [`exp`].
pub fn swiglu(gate_up: &[f32], m: usize) -> Vec<f32> {
    let mut y = vec![0.0; gate_up.len() / 2];
    for (row, out) in gate_up.chunks_exact(2 * m).zip(y.chunks_exact_mut(m.max(1))) {
        let (gate, up) = row.split_at(m);
        for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
            *o = g / (1.0 + exp(-g)) * u;
        }
    }
    y
}

/// `a + b`, elementwise.
pub fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// `eˣ` within 2 ulp of `f32::exp` on [−87, 88], in a form the compiler
/// vectorises (one definition, in the simd128 crate, for both targets).
pub use attnscope_simd128::exp;

/// [`crate::engine::ops::activate`]. GELU's tanh form as `x·σ(2u)` =
/// `x / (1 + e^(−2u))`, u = √(2/π)(x + 0.044715x³), and SiLU `x / (1 + e^(−x))`,
/// with the vectorised [`exp`]; the erf form and ReLU are the reference's own loops.
pub fn activate(x: &mut [f32], activation: Activation) {
    match activation {
        #[cfg(target_arch = "wasm32")]
        Activation::GeluTanh => attnscope_simd128::gelu_tanh(x),
        #[cfg(not(target_arch = "wasm32"))]
        Activation::GeluTanh => each_piece(x, |x| {
            const C: f32 = 0.797_884_6; // √(2/π)
            for v in x.iter_mut() {
                let u = C * (*v + 0.044_715 * *v * *v * *v);
                *v /= 1.0 + exp(-2.0 * u);
            }
        }),
        Activation::Silu => each_piece(x, |x| x.iter_mut().for_each(|v| *v /= 1.0 + exp(-*v))),
        other => crate::engine::ops::activate(x, other),
    }
}

/// `f` on pieces of `x`: natively on rayon's threads when `x` is long
/// enough to be worth a hand-off (`threads` feature), else on `x` whole.
/// Each value's result is the same either way.
fn each_piece(x: &mut [f32], f: impl Fn(&mut [f32]) + Sync + Send) {
    #[cfg(all(feature = "threads", not(target_arch = "wasm32")))]
    if x.len() >= 1 << 16 && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        let piece = x.len().div_ceil(rayon::current_num_threads()).next_multiple_of(64);
        return x.par_chunks_mut(piece).for_each(f);
    }
    f(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_std() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x), x.exp());
            assert!((got - want).abs() <= 2.5 * f32::EPSILON * want, "exp({x}) = {got}, std {want}");
            x += 0.013_7;
        }
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NEG_INFINITY) < 1e-37 && exp(f32::NEG_INFINITY) >= 0.0);
    }

    #[test]
    fn gelu_tanh_matches_the_reference() {
        let xs: Vec<f32> = (-400..400).map(|i| i as f32 * 0.025).collect();
        let (mut fast, mut reference) = (xs.clone(), xs.clone());
        activate(&mut fast, Activation::GeluTanh);
        crate::engine::ops::activate(&mut reference, Activation::GeluTanh);
        for ((a, b), x) in fast.iter().zip(&reference).zip(&xs) {
            assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "gelu({x}): {a} vs {b}");
        }
    }
}
