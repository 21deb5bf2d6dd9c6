//! The one way every test compares floats, natively and in the browser
//! (`wasm_gpu.rs` includes this file by path). Each tolerance is explained
//! here, once.

/// How far `actual` may be from `expected`: `|a − e| ≤ abs` everywhere, and
/// `|a − e| ≤ rel·|e|` where `|e| ≥ 1` when `rel` is set. Infinities (masked
/// scores, −∞) must be equal.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    pub abs: f32,
    pub rel: Option<f32>,
}

/// One kernel against its CPU twin on any adapter: both sum in f32 but in
/// another order (matmul_skinny.wgsl in 16 slices of k), and a hardware GPU
/// fuses multiply-adds, so a value of magnitude ≥ 1 differs by at most a few
/// hundred ulps (2e-5 relative: an H200 gave up to 1.1e-5 on sums of 700
/// products) and small values by 1e-4 absolute.
pub const KERNEL: Tolerance = Tolerance { abs: 1e-4, rel: Some(2e-5) };

/// A kernel or the whole forward pass in the browser (WebGPU through
/// SwiftShader) against the CPU reference compiled to wasm: SwiftShader's
/// exp/tanh are less exact than lavapipe's, so no relative bound, only the
/// 1e-4 the page promises for every number it shows.
pub const BROWSER: Tolerance = Tolerance { abs: 1e-4, rel: None };

/// A whole forward pass on any adapter against the CPU reference, or against
/// another run whose rows took other kernels (an append's rows go through
/// matmul_skinny.wgsl, which sums k in 16 slices, a fresh run's through the
/// tiles): a hardware GPU's exp and fused multiply-adds differ from the
/// CPU's (an H200 gave a logit of 1.06 with 1.3e-5 relative error) and the
/// summation orders differ, and the differences add up over the layers; so
/// no relative bound, only the 1e-4 the page promises for every number it shows.
pub const FORWARD: Tolerance = abs(1e-4);

/// Only an absolute bound: whole-forward results, where the error of many
/// kernels adds up (the bound for logits is 1e-4 absolute).
pub const fn abs(tol: f32) -> Tolerance {
    Tolerance { abs: tol, rel: None }
}

/// Asserts `actual ≈ expected` within `tol`, naming the first element that is not.
pub fn assert_within(actual: &[f32], expected: &[f32], tol: Tolerance, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        if e.is_infinite() || a.is_infinite() {
            assert_eq!(a, e, "{what}[{i}]: masked entries differ");
            continue;
        }
        let err = (a - e).abs();
        assert!(err <= tol.abs, "{what}[{i}]: got {a}, want {e}, abs error {err} > {}", tol.abs);
        if let Some(rel) = tol.rel.filter(|_| e.abs() >= 1.0) {
            assert!(err <= rel * e.abs(), "{what}[{i}]: got {a}, want {e}, rel error {} > {rel}", err / e.abs());
        }
    }
}

/// [`assert_within`] at the [`KERNEL`] tolerance.
pub fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
    assert_within(actual, expected, KERNEL, what);
}
