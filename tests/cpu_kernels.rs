//! The CPU engine's fast kernels (`engine::kernels`) equal their plain-loop
//! references (`engine::ops`) on random shapes, ragged edges included (sizes
//! that fill no SIMD register or cache block evenly, one row, one column).
//! The same file runs natively (`cargo test --test cpu_kernels`) and in wasm
//! with simd128 in headless Chromium (tools/test.sh, wasm-bindgen-test).
//!
//! Tolerance: the kernels add the same products in another order (blocked,
//! several partial sums), so a result may differ from the reference by a few
//! ε times the sum of the absolute values of its terms; we allow
//! 1e−5·(1 + Σ|terms|) (ε = 1.2e−7, so ~80 ε: far above reordering error,
//! far below any indexing mistake, which is O(1)). Softmax weights use the
//! kernels' vectorised exp (within 2 ulp of std's).

#[path = "common/cpu.rs"]
mod cpu;

use attnscope::engine::kernels::{self, AttentionRows, QkvRows};
use attnscope::engine::sampling::Rng;
use attnscope::engine::{ops, Mask};
use attnscope::model::{Activation, Half, ValuesRef};
use cpu::{pick, values, Scores};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const TOL: f32 = 1e-5;

/// `got` within TOL·(1 + scale[i]) of `want`; −∞ must match exactly.
fn assert_close(got: &[f32], want: &[f32], scale: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_infinite() {
            assert_eq!(g, w, "{what}[{i}]");
        } else {
            let s = scale.get(i).copied().unwrap_or(1.0);
            assert!((g - w).abs() <= TOL * (1.0 + s), "{what}[{i}]: {g} vs reference {w}");
        }
    }
}

/// Σ_k |x[i,k]·w[k,j]| for each output, the scale of a matmul's rounding.
fn abs_terms(x: &[f32], w: &[f32], (m, k, n): (usize, usize, usize)) -> Vec<f32> {
    let abs = |v: &[f32]| v.iter().map(|a| a.abs()).collect::<Vec<_>>();
    ops::matmul_bias(&abs(x), &abs(w), &vec![0.0; n], m, k, n)
}

#[test]
fn matmul_bias_equals_the_reference_on_random_shapes() {
    let mut rng = Rng::new(19);
    // Random ragged shapes, then shapes big enough to be split over threads natively.
    let mut shapes: Vec<(usize, usize, usize)> =
        (0..40).map(|_| (pick(&mut rng, 1, 70), pick(&mut rng, 1, 300), pick(&mut rng, 1, 200))).collect();
    shapes.extend([(1, 1, 1), (1, 768, 77), (3, 5, 1), (16, 257, 300), (33, 128, 513), (1, 300, 2000)]);
    // The browser's GEMM: rows read in place (≤ 32) or packed, depth blocks of
    // 256 with a ragged last one, 128-column blocks with ragged panels.
    shapes.extend([(32, 513, 137), (33, 256, 8), (64, 513, 137), (97, 600, 263), (5, 1000, 129), (130, 300, 260)]);
    // Few rows and a row stride of a multiple of 4 KiB: packed, not read in place.
    shapes.extend([(16, 300, 1024), (7, 70, 2048)]);
    // Up to 4 rows, the weights streamed four rows at a time (a ragged last group, ragged columns).
    shapes.extend([(1, 7, 9), (2, 513, 17), (3, 3, 5), (4, 1026, 300), (4, 1, 1), (1, 576, 1536)]);
    for (m, k, n) in shapes {
        let (x, w, b) = (values(&mut rng, m * k, 1.0), values(&mut rng, k * n, 1.0), values(&mut rng, n, 1.0));
        let got = kernels::matmul_bias(&x, &w, &b, m, k, n);
        let want = ops::matmul_bias(&x, &w, &b, m, k, n);
        assert_close(&got, &want, &abs_terms(&x, &w, (m, k, n)), &format!("matmul {m}×{k}×{n}"));
    }
}

#[test]
fn lm_head_equals_the_reference_on_random_shapes() {
    let mut rng = Rng::new(7);
    let mut shapes: Vec<(usize, usize, usize)> =
        (0..30).map(|_| (pick(&mut rng, 1, 20), pick(&mut rng, 1, 100), pick(&mut rng, 1, 400))).collect();
    // Several of the browser's dot-kernel blocks of 64 rows, the last one ragged (65: a lone row).
    shapes.extend([
        (130, 20, 9),
        (1, 37, 7),
        (3, 70, 9),
        (1, 128, 4096),
        (17, 64, 1001),
        (64, 7, 9),
        (40, 300, 333),
        (65, 37, 130),
        (128, 64, 517),
    ]);
    for (t, d, vocab) in shapes {
        let (x, wte) = (values(&mut rng, t * d, 1.0), values(&mut rng, vocab * d, 1.0));
        let got = kernels::lm_head(&x, &wte, t, d, vocab);
        let want = ops::lm_head(&x, &wte, t, d, vocab);
        let wte_t: Vec<f32> = (0..d * vocab).map(|i| wte[(i % vocab) * d + i / vocab]).collect();
        assert_close(&got, &want, &abs_terms(&x, &wte_t, (t, d, vocab)), &format!("lm_head {t}×{d}×{vocab}"));
    }
}

/// The LM head in pieces of the vocabulary (a run in steps, the lens, a
/// paced intervention) writes exactly its columns, each equal to the
/// reference, and leaves every other column as it was.
#[test]
fn lm_head_columns_write_their_columns_only() {
    let mut rng = Rng::new(11);
    // Rows for each of the browser's paths: streamed (≤ 4), dot (≤ 64), packed.
    for (t, d, vocab) in [(1, 37, 100), (3, 64, 257), (9, 70, 130), (65, 33, 301), (130, 40, 97)] {
        let (x, wte) = (values(&mut rng, t * d, 1.0), values(&mut rng, vocab * d, 1.0));
        let want = ops::lm_head(&x, &wte, t, d, vocab);
        let wte_t: Vec<f32> = (0..d * vocab).map(|i| wte[(i % vocab) * d + i / vocab]).collect();
        let scale = abs_terms(&x, &wte_t, (t, d, vocab));
        // Ragged pieces that cover the vocabulary: a sentinel outside the piece stays.
        let mut got = vec![f32::NAN; t * vocab];
        let mut start = 0;
        while start < vocab {
            let end = (start + pick(&mut rng, 1, 80)).min(vocab);
            kernels::lm_head_columns(&x, &wte, (t, d, vocab), start..end, &mut got);
            for (i, v) in got.iter().enumerate() {
                let col = i % vocab;
                assert_eq!(v.is_nan(), col >= end, "lm_head {t}×{d}×{vocab}, after columns {start}..{end}: [{i}]");
            }
            start = end;
        }
        assert_close(&got, &want, &scale, &format!("lm_head in pieces {t}×{d}×{vocab}"));
    }
}

/// Every finite f16 and bf16 value (subnormals, signed zeros) widens to the
/// `half` crate's value: natively through F16C, in wasm through the simd128
/// bit arithmetic (eight at a time, the ragged tail one by one).
#[test]
fn widening_equals_the_half_crate_on_every_finite_value() {
    for format in [Half::F16, Half::Bf16] {
        let want = |h: u16| match format {
            Half::F16 => half::f16::from_bits(h).to_f32(),
            Half::Bf16 => half::bf16::from_bits(h).to_f32(),
        };
        // 65,536 minus the non-finite patterns: not a multiple of 8.
        let finite: Vec<u16> = (0..=u16::MAX).filter(|&h| want(h).is_finite()).collect();
        let mut wide = vec![0.0f32; finite.len()];
        format.widen(&finite, &mut wide);
        for (&h, &w) in finite.iter().zip(&wide) {
            assert_eq!(w.to_bits(), want(h).to_bits(), "{format:?} {h:#06x}");
        }
    }
}

/// `len` random values as 16-bit `format` bits, subnormals and zeros among them.
fn halves(rng: &mut Rng, len: usize, format: Half) -> Vec<u16> {
    values(rng, len, 1.0)
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            // Every 13th value tiny (an f16 subnormal), every 17th zero.
            let v = if i % 13 == 0 {
                v * 1e-6
            } else if i % 17 == 0 {
                0.0
            } else {
                v
            };
            match format {
                Half::F16 => half::f16::from_f32(v).to_bits(),
                Half::Bf16 => half::bf16::from_f32(v).to_bits(),
            }
        })
        .collect()
}

/// 16-bit weights (a matmul's `w`, the LM head's table, whole and in
/// pieces) give what the reference gives on the same values in f32, on
/// every path: up to 4 rows widened in registers (wasm) or a row at a time
/// (natively), ragged 8-lane and 4-row tails; more rows in column blocks
/// of `1048576 / k` columns of the matmul or `1048576 / d` entries of the
/// table, ragged last blocks included, read in place, packed or by the dot
/// kernel.
#[test]
fn sixteen_bit_weights_equal_the_reference_on_their_values() {
    let mut rng = Rng::new(23);
    for format in [Half::F16, Half::Bf16] {
        // The `half` crate's widening, not the kernels' own.
        let wide = |bits: &[u16]| -> Vec<f32> {
            bits.iter()
                .map(|&h| match format {
                    Half::F16 => half::f16::from_bits(h).to_f32(),
                    Half::Bf16 => half::bf16::from_bits(h).to_f32(),
                })
                .collect()
        };
        for (m, k, n) in [
            (1, 600, 7),
            (3, 1026, 300),
            (4, 9, 5),
            (17, 700, 65),
            (40, 513, 129),
            (97, 300, 260),
            (1, 576, 1536),
            (40, 2000, 300),
            (9, 4100, 300),
            (40, 8200, 150),
            (5, 4100, 70),
            // 5 to 32 rows: each 8-column panel widened once for every row block.
            (32, 31, 17),
            (16, 768, 1024),
            (6, 65, 8),
        ] {
            let (x, b) = (values(&mut rng, m * k, 1.0), values(&mut rng, n, 1.0));
            let bits = halves(&mut rng, k * n, format);
            let w = wide(&bits);
            let got = kernels::matmul_bias(&x, ValuesRef::Half(format, &bits), &b, m, k, n);
            let want = ops::matmul_bias(&x, &w, &b, m, k, n);
            assert_close(&got, &want, &abs_terms(&x, &w, (m, k, n)), &format!("{format:?} matmul {m}×{k}×{n}"));
        }
        for (t, d, vocab) in
            [(1, 37, 4096), (3, 128, 700), (9, 70, 1001), (9, 300, 2000), (9, 700, 3000), (65, 33, 1301), (130, 40, 97)]
        {
            let x = values(&mut rng, t * d, 1.0);
            let bits = halves(&mut rng, vocab * d, format);
            let wte = wide(&bits);
            let want = ops::lm_head(&x, &wte, t, d, vocab);
            let wte_t: Vec<f32> = (0..d * vocab).map(|i| wte[(i % vocab) * d + i / vocab]).collect();
            let scale = abs_terms(&x, &wte_t, (t, d, vocab));
            let what = format!("{format:?} lm_head {t}×{d}×{vocab}");
            assert_close(&kernels::lm_head(&x, ValuesRef::Half(format, &bits), t, d, vocab), &want, &scale, &what);
            // In ragged pieces, a sentinel outside each piece left alone.
            let mut got = vec![f32::NAN; t * vocab];
            let mut start = 0;
            while start < vocab {
                let end = (start + pick(&mut rng, 1, 900)).min(vocab);
                kernels::lm_head_columns(&x, ValuesRef::Half(format, &bits), (t, d, vocab), start..end, &mut got);
                assert!(got.iter().enumerate().all(|(i, v)| v.is_nan() == (i % vocab >= end)), "{what} ..{end}");
                start = end;
            }
            assert_close(&got, &want, &scale, &format!("{what} in pieces"));
        }
    }
}

/// The kernel's twin on the kernel's own layout (raw, masked, weights strided
/// by a capacity ≥ T, rows row0..T), against the reference composition.
#[test]
fn attention_rows_equal_the_reference_composition() {
    let mut rng = Rng::new(3);
    for case in 0..60 {
        let t = pick(&mut rng, 1, 40);
        let (n_head, d_head) = (pick(&mut rng, 1, 4), [1, 3, 8, 16, 64, 80][pick(&mut rng, 0, 5)]);
        let mask = match case % 4 {
            0 | 1 => Mask::Causal,
            2 => Mask::Bidirectional,
            _ => Mask::Window(pick(&mut rng, 1, 6) as u32),
        };
        let (row0, cap) = (pick(&mut rng, 0, t - 1), t + pick(&mut rng, 0, 8));
        let d = n_head * d_head;
        let qkv = values(&mut rng, t * 3 * d, 1.0);
        let shape = AttentionRows { row0, m: t - row0, t, n_head, d_head, mask };
        let Scores { raw, masked, weights, out, .. } = Scores::run(&shape, &QkvRows::fused(&qkv, d), cap, d);
        let (raw_ref, masked_ref) = ops::attention_scores(&qkv, t, n_head, d_head, mask);
        let weights_ref = ops::softmax_rows(&masked_ref, t);
        let out_ref = ops::weighted_sum(&weights_ref, &qkv, t, n_head, d_head);
        let what = format!("T={t} rows {row0}.. cap {cap} H={n_head} d_head={d_head} {mask:?}");
        let scale = vec![d_head as f32; t];
        for h in 0..n_head {
            for i in 0..t {
                let (g, r) = ((h * cap + i) * cap, (h * t + i) * t);
                if i < row0 {
                    assert!(raw[g..g + cap].iter().all(|&v| v == 0.0), "row {i} < row0 untouched, {what}");
                    continue;
                }
                assert_close(&raw[g..g + t], &raw_ref[r..r + t], &scale, &format!("raw h{h} row {i} {what}"));
                assert_close(&masked[g..g + t], &masked_ref[r..r + t], &scale, &format!("masked h{h} row {i} {what}"));
                assert_close(&weights[g..g + t], &weights_ref[r..r + t], &[], &format!("weights h{h} row {i} {what}"));
            }
        }
        assert_close(&out[row0 * d..], &out_ref[row0 * d..], &[], &format!("A·V {what}"));
        assert!(out[..row0 * d].iter().all(|&v| v == 0.0), "rows before row0 untouched, {what}");
    }
}

/// A trace that keeps no raw scores computes them when read: a whole head's
/// (`head_raw_scores`, a heatmap) and one pair's (`raw_score`, a hover) are
/// bit for bit the attention kernel's, which the softmax read. So are the
/// weights of a trace that keeps none: rows of them (`head_weight_rows`)
/// and one weight from its raw score and its row's softmax max and sum
/// (`SoftmaxRow::weight`).
#[test]
fn raw_scores_and_weights_read_later_are_the_kernels_bit_for_bit() {
    let mut rng = Rng::new(17);
    for case in 0..30 {
        let t = pick(&mut rng, 1, 70);
        let d_head = [1, 3, 8, 16, 64, 80][pick(&mut rng, 0, 5)];
        let mask = [Mask::Causal, Mask::Bidirectional, Mask::Window(pick(&mut rng, 0, 5) as u32)][case % 3];
        let qkv = values(&mut rng, t * 3 * d_head, 1.0);
        let shape = AttentionRows { row0: 0, m: t, t, n_head: 1, d_head, mask };
        let Scores { raw, weights, softmax, .. } = Scores::run(&shape, &QkvRows::fused(&qkv, d_head), t, d_head);
        let column = |c: usize| (0..t).flat_map(|i| qkv[i * 3 * d_head + c..][..d_head].to_vec()).collect::<Vec<_>>();
        let (q, k) = (column(0), column(d_head));
        let head = kernels::head_raw_scores(&q, &k, (t, t, d_head));
        let rows = pick(&mut rng, 0, t - 1)..t;
        let weight_rows = kernels::head_weight_rows(&q, &k, d_head, t, rows.clone(), mask);
        let scale = 1.0 / (d_head as f32).sqrt();
        for i in 0..t {
            let stats = kernels::SoftmaxRow { max: softmax[2 * i], sum: softmax[2 * i + 1] };
            for j in 0..t {
                let one = kernels::raw_score(&q[i * d_head..][..d_head], &k[j * d_head..][..d_head]);
                let what = format!("T={t} d_head={d_head} {mask:?} ({i}, {j})");
                assert_eq!(head[i * t + j].to_bits(), raw[i * t + j].to_bits(), "head {what}");
                assert_eq!(one.to_bits(), raw[i * t + j].to_bits(), "pair {what}");
                let w = weights[i * t + j];
                let from_stats = if mask.allows(i, j) { stats.weight(one, scale) } else { 0.0 };
                assert_eq!(from_stats.to_bits(), w.to_bits(), "weight from the softmax row {what}");
                if rows.contains(&i) {
                    let row = weight_rows[(i - rows.start) * t + j];
                    assert_eq!(row.to_bits(), w.to_bits(), "weight rows {what}");
                }
            }
        }
    }
}

#[test]
fn attention_rows_with_no_allowed_key_give_zeros_not_nan() {
    let (t, d_head) = (3, 4);
    let qkv = vec![1000.0; t * 3 * d_head];
    let shape = AttentionRows { row0: 0, m: t, t, n_head: 1, d_head, mask: Mask::Window(0) };
    let Scores { masked, weights, out, .. } = Scores::run(&shape, &QkvRows::fused(&qkv, d_head), t, d_head);
    assert!(weights.iter().chain(&out).all(|&w| w == 0.0), "{weights:?} {out:?}");
    assert!(masked.iter().all(|&m| m == f32::NEG_INFINITY));
}

#[test]
fn layernorm_and_gelu_equal_the_reference() {
    let mut rng = Rng::new(11);
    for _ in 0..30 {
        let (rows, d) = (pick(&mut rng, 1, 9), pick(&mut rng, 1, 200));
        let x = values(&mut rng, rows * d, 4.0);
        let (g, b) = (values(&mut rng, d, 2.0), values(&mut rng, d, 1.0));
        let got = kernels::layernorm(&x, &g, &b, d, 1e-5);
        let want = ops::layernorm(&x, &g, &b, d, 1e-5);
        assert_close(&got, &want, &vec![4.0; got.len()], &format!("layernorm {rows}×{d}"));
        for act in [Activation::GeluTanh, Activation::Gelu, Activation::Relu] {
            let (mut fast, mut reference) = (x.clone(), x.clone());
            kernels::activate(&mut fast, act);
            ops::activate(&mut reference, act);
            assert_close(&fast, &reference, &x.iter().map(|v| v.abs()).collect::<Vec<_>>(), &format!("{act:?}"));
        }
    }
}
