//! Helpers shared by the native integration tests.
#![allow(dead_code)]

pub mod close;
pub mod cpu;
pub mod kernels;

#[allow(unused_imports)]
pub use close::{assert_close, assert_within, FORWARD};

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

/// Asserts |a − e| ≤ `tol` elementwise (see [`close::abs`]).
pub fn assert_close_abs(actual: &[f32], expected: &[f32], tol: f32, what: &str) {
    assert_within(actual, expected, close::abs(tol), what);
}
