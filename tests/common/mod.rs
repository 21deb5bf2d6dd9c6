//! Helpers shared by the native integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use attnscope::gpu::GpuContext;
use attnscope::model::Model;

pub fn placeholder_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/placeholder")
}

pub fn placeholder() -> Model {
    Model::load_dir(&placeholder_dir()).expect("the shipped placeholder model loads")
}

/// One GPU context for the whole test binary. Never skips: with no adapter
/// the test fails and says what to install.
pub fn gpu() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| match GpuContext::new_blocking() {
        Ok(ctx) => {
            eprintln!("GPU tests run on {}", ctx.describe());
            ctx
        }
        Err(e) => panic!(
            "GPU tests need a wgpu adapter and none was found: {e}\n\
             On Debian install the software Vulkan driver: apt-get install mesa-vulkan-drivers libvulkan1\n\
             (tools/test.sh does this)."
        ),
    })
}

/// Asserts `actual ≈ expected` elementwise: |a − e| ≤ 1e-4 everywhere, and
/// |a − e| ≤ 1e-5·|e| where |e| ≥ 1 (relative error where values are not tiny).
/// Masked entries (−∞) must match exactly.
pub fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        if e.is_infinite() || a.is_infinite() {
            assert_eq!(a, e, "{what}[{i}]: masked entries differ");
            continue;
        }
        let err = (a - e).abs();
        assert!(err <= 1e-4, "{what}[{i}]: GPU {a}, CPU {e}, abs error {err}");
        if e.abs() >= 1.0 {
            assert!(err <= 1e-5 * e.abs(), "{what}[{i}]: GPU {a}, CPU {e}, rel error {}", err / e.abs());
        }
    }
}

/// A small deterministic generator for test data drawn from one proptest seed.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// `len` values in (−scale, scale).
    pub fn vec(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.next_f32() * scale).collect()
    }
}

/// Asserts |a − e| ≤ `tol` elementwise: for whole-forward results, where the
/// error of many kernels adds up (the bound for logits is 1e-4 absolute).
pub fn assert_close_abs(actual: &[f32], expected: &[f32], tol: f32, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let (worst, at) = actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).abs())
        .enumerate()
        .fold((0.0f32, 0), |(w, wi), (i, err)| if err > w || err.is_nan() { (err, i) } else { (w, wi) });
    assert!(worst <= tol, "{what}[{at}]: GPU {}, CPU {}, abs error {worst} > {tol}", actual[at], expected[at]);
}
