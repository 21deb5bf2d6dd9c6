//! The attention kernels (attention_rows.wgsl, flash_attention.wgsl, flash_rows.wgsl) against their CPU twin with the
//! same signature (engine::kernels::attention_rows, itself checked against engine::ops in
//! tests/cpu_kernels.rs) and the naive path, on random shapes, masks and row offsets,
//! through wgpu on whatever adapter is present (lavapipe in CI).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use attnscope::engine::kernels::{self, AttentionRows, QkvRows, ScoreRows};
use attnscope::engine::{ops, Mask};
use attnscope::gpu::{AttentionShape, Kernel};
use common::kernels::{mask_strategy, read, run, vector};
use common::{assert_close, gpu};
use proptest::prelude::*;

#[path = "common/buffers.rs"]
mod buffers;
use buffers::{output, upload};

/// engine::kernels::attention_rows into whole buffers of the GPU's layout
/// (`[H × cap × cap]` matrices, rows not computed left 0): raw, masked, weights, A·V.
fn cpu_rows(rows: &AttentionRows, qkv: &[f32], cap: usize) -> [Vec<f32>; 4] {
    let (len, d) = (rows.n_head * cap * cap, rows.n_head * rows.d_head);
    let (mut raw, mut masked, mut weights, mut out) =
        (vec![0.0; len], vec![0.0; len], vec![0.0; len], vec![0.0; rows.t * d]);
    let mut softmax = vec![0.0; 2 * rows.n_head * cap];
    let mut dst = ScoreRows {
        raw: &mut raw,
        masked: &mut masked,
        weights: &mut weights,
        softmax: &mut softmax,
        out: &mut out,
        cap,
        rows: cap,
        first_row: 0,
    };
    kernels::attention_rows(rows, &QkvRows::fused(qkv, d), &mut dst);
    [raw, masked, weights, out]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Scores, scale, mask, softmax and A·V of rows row0..T, with matrices strided by a capacity ≥ T.
    #[test]
    fn attention_rows_match_cpu((t, n_head, d_head, mask, row0, extra, qkv) in
        (1usize..80, 1usize..4, prop::sample::select(vec![8usize, 16, 64, 80]), mask_strategy(), 0usize..80, 0usize..9)
            .prop_flat_map(|(t, h, dh, mask, r0, extra)| {
                (Just(t), Just(h), Just(dh), Just(mask), Just(r0 % t), Just(extra), vector(t * 3 * h * dh, 0.5))
            })
    ) {
        let ctx = gpu();
        let (cap, d) = (t + extra, n_head * d_head);
        let len = n_head * cap * cap;
        let qb = upload(ctx, &qkv);
        let (rawb, maskedb, wb, ob) = (output(ctx, len), output(ctx, len), output(ctx, len), output(ctx, t * d));
        let shape = AttentionShape { m: t - row0, t, n_head, n_kv_head: n_head, d_head, row0, mask };
        run(Kernel::AttentionRows, &shape.rows_params(cap).unwrap(), &[&qb, &rawb, &maskedb, &wb, &ob], shape.rows_workgroups());
        // The CPU twin (engine::kernels::attention_rows) on the same layout:
        // whole buffers compare, rows before row0 included (zero on both).
        let rows = AttentionRows { row0, m: t - row0, t, n_head, d_head, mask };
        let [raw_cpu, masked_cpu, weights_cpu, out_cpu] = cpu_rows(&rows, &qkv, cap);
        let what = format!("T={t} rows {row0}.. cap {cap} H={n_head} d_head={d_head} {mask:?}");
        assert_close(&read(&rawb, 0, len), &raw_cpu, &format!("raw {what}"));
        assert_close(&read(&maskedb, 0, len), &masked_cpu, &format!("masked {what}"));
        assert_close(&read(&wb, 0, len), &weights_cpu, &format!("weights {what}"));
        assert_close(&read(&ob, 0, t * d), &out_cpu, &format!("A·V {what}"));
    }

    /// A traced append or edit: rows 0..kept come from an earlier run over
    /// `t_before` tokens whose keys from `kept` on differed (an edited last
    /// token, then typing on); the second run keeps those rows and writes
    /// only their scores against keys kept..T, and rows kept..T whole. Every
    /// matrix and A·V then equal one fresh run over the new tokens.
    #[test]
    fn kept_rows_get_only_their_new_columns((t, kept, t_before, n_head, d_head, window, before, after) in
        (2usize..70, 1usize..4, prop::sample::select(vec![8usize, 64]), 0u32..6)
            .prop_flat_map(|(t, h, dh, w)| {
                (Just(t), 1..t, Just(h), Just(dh), Just(w))
            })
            .prop_flat_map(|(t, kept, h, dh, w)| {
                (Just(t), Just(kept), kept..=t, Just(h), Just(dh), Just(w),
                 vector(t * 3 * h * dh, 0.5), vector(t * 3 * h * dh, 0.5))
            })
    ) {
        let ctx = gpu();
        // 0 is the causal mask; 1..6 a window of that width.
        let mask = if window == 0 { Mask::Causal } else { Mask::Window(window) };
        let (cap, d, width) = (t + 3, n_head * d_head, 3 * n_head * d_head);
        // The new tokens' q, k, v: the earlier run's for rows before `kept`.
        let mut qkv = after;
        qkv[..kept * width].copy_from_slice(&before[..kept * width]);
        let len = n_head * cap * cap;
        let (rawb, maskedb, wb, ob) = (output(ctx, len), output(ctx, len), output(ctx, len), output(ctx, t * d));
        let earlier = AttentionShape { m: t_before, t: t_before, n_head, n_kv_head: n_head, d_head, row0: 0, mask };
        let qb = upload(ctx, &before);
        run(Kernel::AttentionRows, &earlier.rows_params(cap).unwrap(), &[&qb, &rawb, &maskedb, &wb, &ob], earlier.rows_workgroups());
        let shape = AttentionShape { m: t, t, n_head, n_kv_head: n_head, d_head, row0: 0, mask };
        let qb = upload(ctx, &qkv);
        run(Kernel::AttentionRows, &shape.rows_params_keeping(cap, kept).unwrap(), &[&qb, &rawb, &maskedb, &wb, &ob], shape.rows_workgroups());
        let [raw_cpu, masked_cpu, weights_cpu, out_cpu] =
            cpu_rows(&AttentionRows { row0: 0, m: t, t, n_head, d_head, mask }, &qkv, cap);
        // Compare rows 0..T, keys 0..T of each head (the earlier run may have left values past T).
        let cells = |m: &[f32]| -> Vec<f32> {
            (0..n_head * t * t).map(|at| m[((at / (t * t)) * cap + at / t % t) * cap + at % t]).collect()
        };
        let what = format!("T={t} kept {kept} after {t_before} H={n_head} d_head={d_head} {mask:?}");
        assert_close(&cells(&read(&rawb, 0, len)), &cells(&raw_cpu), &format!("raw {what}"));
        assert_close(&cells(&read(&maskedb, 0, len)), &cells(&masked_cpu), &format!("masked {what}"));
        assert_close(&cells(&read(&wb, 0, len)), &cells(&weights_cpu), &format!("weights {what}"));
        assert_close(&read(&ob, 0, t * d), &out_cpu, &format!("A·V {what}"));
    }

    /// Flash attention (both kernels: an invocation per row, a workgroup per
    /// row) never materialises T×T and equals the naive path.
    #[test]
    fn flash_attention_equals_naive((t, n_head, d_head, mask, row0, qkv) in
        (1usize..80, 1usize..4, prop::sample::select(vec![8usize, 16, 64, 80]), mask_strategy(), 0usize..80)
            .prop_flat_map(|(t, h, dh, mask, r0)| {
                (Just(t), Just(h), Just(dh), Just(mask), Just(r0 % t), vector(t * 3 * h * dh, 1.0))
            })
    ) {
        let ctx = gpu();
        let d = n_head * d_head;
        let (qb, ob, rb) = (upload(ctx, &qkv), output(ctx, t * d), output(ctx, t * d));
        let shape = AttentionShape { m: t - row0, t, n_head, n_kv_head: n_head, d_head, row0, mask };
        run(Kernel::FlashAttention, &shape.flash_params().unwrap(), &[&qb, &ob], shape.flash_workgroups());
        run(Kernel::FlashRows, &shape.flash_params().unwrap(), &[&qb, &rb], shape.flash_rows_workgroups());
        let (_, masked) = ops::attention_scores(&qkv, t, n_head, d_head, mask);
        let want = ops::weighted_sum(&ops::softmax_rows(&masked, t), &qkv, t, n_head, d_head);
        let what = format!("T={t} rows {row0}.. H={n_head} d_head={d_head} {mask:?}");
        assert_close(&read(&ob, row0 * d, (t - row0) * d), &want[row0 * d..], &format!("flash_attention {what}"));
        assert_close(&read(&rb, row0 * d, (t - row0) * d), &want[row0 * d..], &format!("flash_rows {what}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// flash_rows.wgsl over more keys than one tile (1024): the last rows of
    /// a long text, the running max and sum carried across tiles (the scores
    /// drift so a later tile holds a larger max), every mask.
    #[test]
    fn flash_rows_carry_the_softmax_across_key_tiles((t, m, d_head, mask, qkv) in
        (1025usize..2300, 1usize..4, prop::sample::select(vec![8usize, 72, 128]), mask_strategy())
            .prop_flat_map(|(t, m, dh, mask)| (Just(t), Just(m), Just(dh), Just(mask), vector(t * 3 * dh, 0.5)))
    ) {
        let ctx = gpu();
        // Keys grow with their position: later tiles hold the larger scores.
        let qkv: Vec<f32> = qkv.iter().enumerate().map(|(at, v)| {
            let (j, c) = (at / (3 * d_head), at % (3 * d_head));
            if (d_head..2 * d_head).contains(&c) { v + j as f32 / t as f32 } else { v.abs() + 0.1 }
        }).collect();
        let row0 = t - m;
        let (qb, rb) = (upload(ctx, &qkv), output(ctx, t * d_head));
        let shape = AttentionShape { m, t, n_head: 1, n_kv_head: 1, d_head, row0, mask };
        run(Kernel::FlashRows, &shape.flash_params().unwrap(), &[&qb, &rb], shape.flash_rows_workgroups());
        let (_, masked) = ops::attention_scores(&qkv, t, 1, d_head, mask);
        let want = ops::weighted_sum(&ops::softmax_rows(&masked, t), &qkv, t, 1, d_head);
        assert_close(&read(&rb, row0 * d_head, m * d_head), &want[row0 * d_head..],
            &format!("flash_rows T={t} rows {row0}.. d_head={d_head} {mask:?}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// attention_rows.wgsl over more keys than workgroup memory holds (1024):
    /// the row is worked in its own row of `weights`; the last rows of a long
    /// text, every stage against the CPU twin, every mask, grouped KV heads.
    #[test]
    fn attention_rows_past_workgroup_memory((t, m, extra, d_head, n_head, mask, qkv) in
        (1025usize..2300, 1usize..4, 0usize..5, prop::sample::select(vec![8usize, 72]), 1usize..3, mask_strategy())
            .prop_flat_map(|(t, m, extra, dh, h, mask)| {
                (Just(t), Just(m), Just(extra), Just(dh), Just(h), Just(mask), vector(t * 3 * h * dh, 0.5))
            })
    ) {
        let ctx = gpu();
        let width = 3 * n_head * d_head;
        // Keys grow with their position: the row's max is among its last keys.
        let qkv: Vec<f32> = qkv.iter().enumerate().map(|(at, v)| {
            let (j, c) = (at / width, at % width);
            if (n_head * d_head..2 * n_head * d_head).contains(&c) { v + j as f32 / t as f32 } else { v.abs() + 0.1 }
        }).collect();
        let (cap, d, row0) = (t + extra, n_head * d_head, t - m);
        let len = n_head * cap * cap;
        let qb = upload(ctx, &qkv);
        let (rawb, maskedb, wb, ob) = (output(ctx, len), output(ctx, len), output(ctx, len), output(ctx, t * d));
        let shape = AttentionShape { m, t, n_head, n_kv_head: n_head, d_head, row0, mask };
        run(Kernel::AttentionRows, &shape.rows_params(cap).unwrap(), &[&qb, &rawb, &maskedb, &wb, &ob], shape.rows_workgroups());
        let rows = AttentionRows { row0, m, t, n_head, d_head, mask };
        let [raw_cpu, masked_cpu, weights_cpu, out_cpu] = cpu_rows(&rows, &qkv, cap);
        let what = format!("T={t} rows {row0}.. cap {cap} H={n_head} d_head={d_head} {mask:?}");
        assert_close(&read(&rawb, 0, len), &raw_cpu, &format!("raw {what}"));
        assert_close(&read(&maskedb, 0, len), &masked_cpu, &format!("masked {what}"));
        assert_close(&read(&wb, 0, len), &weights_cpu, &format!("weights {what}"));
        assert_close(&read(&ob, row0 * d, m * d), &out_cpu[row0 * d..], &format!("A·V {what}"));
    }
}

/// Large scores (±1000 after scaling) neither overflow nor give NaN, and a row
/// with no allowed key (a window of width 0) gives zero weights and output.
#[test]
fn attention_is_stable_for_large_scores_and_empty_rows() {
    let ctx = gpu();
    let (t, d_head) = (4, 8);
    // q·k = ±8·c² for constant rows: c = 32 gives scores of ±2896 after ÷√8.
    let qkv: Vec<f32> = (0..t * 3 * d_head).map(|i| if (i / (3 * d_head)) % 2 == 0 { 32.0 } else { -32.0 }).collect();
    let qb = upload(ctx, &qkv);
    let len = t * t;
    for mask in [Mask::Causal, Mask::Window(0)] {
        let (rawb, maskedb, wb, ob, fb, rb) = (
            output(ctx, len),
            output(ctx, len),
            output(ctx, len),
            output(ctx, t * d_head),
            output(ctx, t * d_head),
            output(ctx, t * d_head),
        );
        let shape = AttentionShape { m: t, t, n_head: 1, n_kv_head: 1, d_head, row0: 0, mask };
        run(
            Kernel::AttentionRows,
            &shape.rows_params(t).unwrap(),
            &[&qb, &rawb, &maskedb, &wb, &ob],
            shape.rows_workgroups(),
        );
        run(Kernel::FlashAttention, &shape.flash_params().unwrap(), &[&qb, &fb], shape.flash_workgroups());
        run(Kernel::FlashRows, &shape.flash_params().unwrap(), &[&qb, &rb], shape.flash_rows_workgroups());
        let (_, masked) = ops::attention_scores(&qkv, t, 1, d_head, mask);
        let weights = ops::softmax_rows(&masked, t);
        let got = read(&wb, 0, len);
        assert!(got.iter().all(|w| w.is_finite()), "{mask:?}: no NaN or ∞ in weights: {got:?}");
        assert_close(&got, &weights, &format!("weights {mask:?}"));
        let out = ops::weighted_sum(&weights, &qkv, t, 1, d_head);
        assert_close(&read(&ob, 0, t * d_head), &out, &format!("A·V {mask:?}"));
        assert_close(&read(&fb, 0, t * d_head), &out, &format!("flash {mask:?}"));
        assert_close(&read(&rb, 0, t * d_head), &out, &format!("flash_rows {mask:?}"));
    }
}

#[test]
fn attention_shapes_past_the_kernel_limits_are_refused() {
    let too_wide = AttentionShape { m: 1, t: 4, n_head: 1, n_kv_head: 1, d_head: 200, row0: 0, mask: Mask::Causal };
    assert!(too_wide.flash_params().unwrap_err().to_string().contains("d_head"));
    // attention_rows.wgsl takes any T its buffers hold, and no more.
    let long = AttentionShape { m: 1, t: 2000, n_head: 1, n_kv_head: 1, d_head: 64, row0: 0, mask: Mask::Causal };
    assert!(long.rows_params(2048).is_ok());
    assert!(long.rows_params(1999).unwrap_err().to_string().contains("T ≤ 1999"));
    let rows_past_t = AttentionShape { m: 3, t: 4, n_head: 1, n_kv_head: 1, d_head: 8, row0: 2, mask: Mask::Causal };
    assert!(rows_past_t.rows_params(4).is_err());
}

/// Flash attention over the page's longest text (2,048 tokens), every row:
/// the kernel the forward picks on this adapter (`flash_kernel` with its
/// `loop_limit`) computes every row. On lavapipe, where one invocation stops
/// after 65,535 loop iterations in all, flash_attention.wgsl's walk over
/// 2,048 keys would stop short (from row 448 at d_head 64, silently zero),
/// so the forward takes flash_rows.wgsl there. And where `flash_iterations`
/// stays under that bound with the forward's margin, flash_attention.wgsl
/// itself computes every row: the count does not undercount the driver's.
#[test]
fn flash_attention_over_a_long_text_computes_every_row() {
    let ctx = gpu();
    let mut rng = common::Lcg(11);
    let check = |kernel: Kernel, workgroups: [u32; 3], shape: &AttentionShape, qkv: &[f32], what: &str| {
        let d = shape.n_head * shape.d_head;
        let (qb, ob) = (upload(ctx, qkv), output(ctx, shape.t * d));
        run(kernel, &shape.flash_params().unwrap(), &[&qb, &ob], workgroups);
        let (_, masked) = ops::attention_scores(qkv, shape.t, shape.n_head, shape.d_head, shape.mask);
        let want = ops::weighted_sum(&ops::softmax_rows(&masked, shape.t), qkv, shape.t, shape.n_head, shape.d_head);
        assert_close(&read(&ob, 0, shape.t * d), &want, &format!("{kernel:?} {what}"));
    };
    for (t, n_head, d_head) in [(2048usize, 2usize, 16usize), (2048, 1, 64)] {
        let qkv = rng.vec(t * 3 * n_head * d_head, 0.5);
        for mask in [Mask::Causal, Mask::Window(700), Mask::Bidirectional] {
            let shape = AttentionShape { m: t, t, n_head, n_kv_head: n_head, d_head, row0: 0, mask };
            let (kernel, workgroups) = shape.flash_kernel(ctx.loop_limit());
            check(kernel, workgroups, &shape, &qkv, &format!("T={t} H={n_head} d_head={d_head} {mask:?}"));
        }
    }
    if let Some(limit) = ctx.loop_limit() {
        for d_head in [16usize, 64] {
            // The longest text flash_attention.wgsl still takes on this adapter.
            let fits = |t: usize| {
                let shape = AttentionShape { m: t, t, n_head: 1, n_kv_head: 1, d_head, row0: 0, mask: Mask::Causal };
                shape.flash_kernel(Some(limit)).0 == Kernel::FlashAttention
            };
            let t = (65..4096).take_while(|&t| fits(t)).last().expect("flash_attention takes 65 rows");
            let shape = AttentionShape { m: t, t, n_head: 1, n_kv_head: 1, d_head, row0: 0, mask: Mask::Causal };
            let qkv = rng.vec(t * 3 * d_head, 0.5);
            check(
                Kernel::FlashAttention,
                shape.flash_workgroups(),
                &shape,
                &qkv,
                &format!("T={t} d_head={d_head}, at the bound"),
            );
        }
    }
}

/// flash_rows.wgsl (each row a workgroup, the keys shared by its 64
/// invocations) also loops with T: on a driver with a loop bound the forward
/// refuses attention past it rather than compute it short; at the longest T
/// it still takes (d_head 128: about 13,000 keys on lavapipe) the last row
/// equals the softmax-weighted sum computed here in f64. Without a bound
/// (a hardware GPU) nothing is refused and the row is checked at 16,384 keys.
#[test]
fn flash_rows_within_the_loop_bound_computes_the_row_and_past_it_is_refused() {
    let ctx = gpu();
    let d_head = 128;
    let shape = |t: usize| AttentionShape { m: 1, t, n_head: 1, n_kv_head: 1, d_head, row0: t - 1, mask: Mask::Causal };
    let t = match ctx.loop_limit() {
        Some(limit) => {
            let fits = |t: usize| shape(t).flash_kernel_within(Some(limit)).is_ok();
            let t = (1..1000).map(|k| k * 64).take_while(|&t| fits(t)).last().expect("flash_rows takes 64 keys");
            let err = shape(t + 64).flash_kernel_within(Some(limit)).unwrap_err();
            assert!(err.to_string().contains("stops a loop"), "{err}");
            t
        }
        None => 16_384,
    };
    let mut rng = common::Lcg(5);
    let qkv = rng.vec(t * 3 * d_head, 0.5);
    let s = shape(t);
    let (kernel, workgroups) = s.flash_kernel_within(ctx.loop_limit()).unwrap();
    assert_eq!(kernel, Kernel::FlashRows);
    let (qb, ob) = (upload(ctx, &qkv), output(ctx, t * d_head));
    run(kernel, &s.flash_params().unwrap(), &[&qb, &ob], workgroups);
    // The last row by hand: q·k_j / √d, softmax over every key, Σ w_j v_j.
    let row = |j: usize, part: usize| &qkv[j * 3 * d_head + part * d_head..][..d_head];
    let q = row(t - 1, 0);
    let scores: Vec<f64> = (0..t)
        .map(|j| q.iter().zip(row(j, 1)).map(|(a, b)| (a * b) as f64).sum::<f64>() / (d_head as f64).sqrt())
        .collect();
    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let total: f64 = e.iter().sum();
    let want: Vec<f32> =
        (0..d_head).map(|c| ((0..t).map(|j| e[j] * row(j, 2)[c] as f64).sum::<f64>() / total) as f32).collect();
    assert_close(&read(&ob, (t - 1) * d_head, d_head), &want, &format!("flash_rows, the last row of T = {t}"));
}
