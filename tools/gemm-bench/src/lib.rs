//! The candidates, each computing `c[m×n] = a[m×k] · b[k×n]` (b row-major, or
//! `b` given as `[n×k]` when `transposed`, as the tied LM head's `wte`).
//! On wasm32 the exported `setup`/`run` let node time them (run.mjs).

#[derive(Clone, Copy, Debug)]
pub enum Impl {
    Naive,
    MatrixMultiply,
    Gemm,
    /// gemm with rayon on two threads (native only).
    Gemm2,
    /// The engine's own simd128 GEMM (wasm only: crates/simd128).
    Simd128,
    /// The engine's native AVX-512 kernels that read the weights in place
    /// (src/engine/kernels/avx512.rs; the app uses them up to 48 rows, 32 for
    /// the transposed LM head, and gemm above: here they take every shape).
    Avx512,
}

pub const IMPLS: [Impl; 5] = [Impl::Naive, Impl::MatrixMultiply, Impl::Gemm, Impl::Gemm2, Impl::Avx512];

/// The app's file itself.
#[cfg(target_arch = "x86_64")]
#[path = "../../../src/engine/kernels/avx512.rs"]
#[allow(dead_code)]
mod avx512;

/// The engine's reference loop (`engine::ops::matmul_bias` / `lm_head`).
fn naive(a: &[f32], b: &[f32], c: &mut [f32], (m, k, n): (usize, usize, usize), transposed: bool) {
    c.fill(0.0);
    for i in 0..m {
        let out = &mut c[i * n..][..n];
        if transposed {
            let row = &a[i * k..][..k];
            for (j, o) in out.iter_mut().enumerate() {
                *o = row.iter().zip(&b[j * k..][..k]).map(|(x, y)| x * y).sum();
            }
        } else {
            for kk in 0..k {
                let xv = a[i * k + kk];
                for (o, w) in out.iter_mut().zip(&b[kk * n..][..n]) {
                    *o += xv * w;
                }
            }
        }
    }
}

pub fn run(which: Impl, a: &[f32], b: &[f32], c: &mut [f32], (m, k, n): (usize, usize, usize), transposed: bool) {
    // Strides of b as k×n: row-major, or the transpose of an n×k row-major.
    let (rsb, csb) = if transposed { (1, k as isize) } else { (n as isize, 1) };
    match which {
        Impl::Naive => naive(a, b, c, (m, k, n), transposed),
        Impl::MatrixMultiply => unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                k as isize,
                1,
                b.as_ptr(),
                rsb,
                csb,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            )
        },
        #[cfg(target_arch = "wasm32")]
        Impl::Simd128 => {
            c.fill(0.0);
            let b = if transposed {
                ours::Strided { data: b, rs: 1, cs: k }
            } else {
                ours::Strided { data: b, rs: n, cs: 1 }
            };
            ours::gemm(ours::Strided { data: a, rs: k, cs: 1 }, b, c, n, (m, k, n));
        }
        #[cfg(not(target_arch = "wasm32"))]
        Impl::Simd128 => unreachable!("simd128 is the wasm build's"),
        #[cfg(target_arch = "x86_64")]
        Impl::Avx512 => {
            assert!(avx512::available(), "no AVX-512 F on this CPU");
            c.fill(0.0);
            // SAFETY: AVX-512 F checked; every view lies in its vector.
            unsafe {
                if transposed {
                    avx512::gemm_dot_few((m, k, n), (a.as_ptr(), k), (b.as_ptr(), k), (c.as_mut_ptr(), n));
                } else {
                    avx512::gemm_rows((m, k, n), (a.as_ptr(), k), (b.as_ptr(), n), (c.as_mut_ptr(), n));
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Impl::Avx512 => unreachable!("AVX-512 is x86-64's"),
        Impl::Gemm | Impl::Gemm2 => {
            let par = match which {
                #[cfg(not(target_arch = "wasm32"))]
                Impl::Gemm2 => gemm::Parallelism::Rayon(2),
                _ => gemm::Parallelism::None,
            };
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    csb,
                    rsb,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    par,
                )
            }
        }
    }
}

/// Deterministic operands in [-1, 1).
pub fn operands(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let fill = |len: usize, s: usize| (0..len).map(|i| ((i * s % 1999) as f32 / 999.5) - 1.0).collect::<Vec<f32>>();
    (fill(m * k, 37), fill(k * n, 101), vec![0.0; m * n])
}

/// The engine's wasm GEMM (crates/simd128).
#[cfg(target_arch = "wasm32")]
use attnscope_simd128 as ours;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        static CASE: RefCell<(Vec<f32>, Vec<f32>, Vec<f32>, (usize, usize, usize), bool)> = RefCell::new(Default::default());
    }

    #[no_mangle]
    pub extern "C" fn setup(m: usize, k: usize, n: usize, transposed: u32) {
        let (a, b, c) = operands(m, k, n);
        CASE.with(|cs| *cs.borrow_mut() = (a, b, c, (m, k, n), transposed != 0));
    }

    /// Runs candidate `which` once; returns c's sum (checks and keeps the work).
    #[no_mangle]
    pub extern "C" fn run_once(which: u32) -> f32 {
        CASE.with(|cs| {
            let (a, b, c, shape, t) = &mut *cs.borrow_mut();
            let impls = [Impl::Naive, Impl::MatrixMultiply, Impl::Gemm, Impl::Simd128];
            run(impls[which as usize % 4], a, b, c, *shape, *t);
            c.iter().sum()
        })
    }
}
