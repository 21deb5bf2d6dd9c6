//! Every WGSL kernel against its CPU reference (engine::ops) on random shapes,
//! through wgpu on whatever adapter is present (lavapipe in CI). The
//! attention kernel is checked against its CPU twin with the same signature
//! (engine::kernels::attention_rows, itself checked against ops in
//! tests/cpu_kernels.rs).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use attnscope::engine::kernels::{self, AttentionRows, QkvRows, ScoreRows};
use attnscope::engine::{ops, residual, sampling, Mask, Matrix};
use attnscope::gpu::{
    read_f32, AttentionShape, EmbedParams, Kernel, Kernels, LayernormParams, MatmulFusion, MatmulParams,
    RowNormsParams, TopKParams, ValueRangeParams, SKINNY_MAX_ROWS,
};
use attnscope::model::Activation;
use attnscope::render::raster;
use common::{assert_close, gpu};
use proptest::prelude::*;
use wgpu::util::DeviceExt;

#[path = "common/buffers.rs"]
mod buffers;
use buffers::{output, upload};

fn kernels() -> &'static Kernels {
    static K: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
    K.get_or_init(|| Kernels::new(gpu()))
}

fn run<P: bytemuck::Pod>(kernel: Kernel, params: &P, buffers: &[&wgpu::Buffer], workgroups: [u32; 3]) {
    let ctx = gpu();
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    kernels().dispatch(ctx, &mut enc, kernel, params, buffers, workgroups).unwrap();
    ctx.queue.submit([enc.finish()]);
}

fn read(buffer: &wgpu::Buffer, offset: usize, len: usize) -> Vec<f32> {
    let ctx = gpu();
    let values = pollster::block_on(read_f32(ctx, buffer, offset as u64, len)).expect("readback");
    assert_eq!(ctx.fault(), None, "the GPU reported an error");
    values
}

fn vector(len: usize, scale: f32) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-scale..scale, len)
}

fn mask_strategy() -> impl Strategy<Value = Mask> {
    prop_oneof![Just(Mask::Causal), Just(Mask::Bidirectional), (1u32..6).prop_map(Mask::Window)]
}

/// A fused matmul's inputs: x[rows×k], w[k×n] (or [n×k]), b[n], res[rows×n], ln[2k].
struct Operands {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    res: Vec<f32>,
    ln: Vec<f32>,
}

/// The fused matmul on the GPU: returns (y, ln_out, pre) for rows `row0..row0+m`.
fn matmul_gpu(
    o: &Operands,
    (row0, m, k, n): (usize, usize, usize, usize),
    fusion: MatmulFusion,
    kernel: Kernel,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let ctx = gpu();
    let rows = row0 + m;
    let (xb, wb, bb) = (upload(ctx, &o.x), upload(ctx, &o.w), upload(ctx, &o.b));
    let (rb, lb) = (upload(ctx, &o.res), upload(ctx, &o.ln));
    let (yb, lnb, preb) = (output(ctx, rows * n), output(ctx, rows * k), output(ctx, rows * n));
    let params = MatmulParams::new((m, k, n), fusion).rows_from(row0, row0);
    run(kernel, &params, &[&xb, &wb, &bb, &yb, &rb, &lb, &lnb, &preb], params.workgroups_for(kernel));
    (read(&yb, row0 * n, m * n), read(&lnb, row0 * k, m * k), read(&preb, row0 * n, m * n))
}

const MATMULS: [Kernel; 2] = [Kernel::MatmulBias, Kernel::MatmulSkinny];

/// Every fusion on (bias, residual, pre-residual write), the layernorm
/// prologue, transposed weights and activation as given.
fn every_fusion(layernorm: bool, transposed: bool, activation: Option<Activation>) -> MatmulFusion {
    MatmulFusion {
        layernorm: layernorm.then_some(1e-5),
        write_ln: layernorm,
        transposed,
        bias: true,
        activation,
        residual: true,
        write_pre: true,
    }
}

/// Random operands for `rows` rows, w's entries up to `w_scale`.
fn random_operands(seed: u64, rows: usize, k: usize, n: usize, w_scale: f32) -> Operands {
    let mut rng = common::Lcg(seed);
    Operands {
        x: rng.vec(rows * k, 3.0),
        w: rng.vec(k * n, w_scale),
        b: rng.vec(n, 1.0),
        res: rng.vec(rows * n, 2.0),
        ln: rng.vec(2 * k, 1.5),
    }
}

/// Both matmul kernels against the CPU composition of the same fusions.
fn check_fused(o: &Operands, (row0, m, k, n): (usize, usize, usize, usize), fusion: MatmulFusion) {
    let Operands { x, w, b, res, ln } = o;
    let x_rows = &x[row0 * k..];
    let normed = match fusion.layernorm {
        Some(eps) => ops::layernorm(x_rows, &ln[..k], &ln[k..], k, eps),
        None => x_rows.to_vec(),
    };
    // w as [K×N] for the reference.
    let w_kn: Vec<f32> =
        if fusion.transposed { (0..k * n).map(|i| w[(i % n) * k + i / n]).collect() } else { w.to_vec() };
    let zero_bias = vec![0.0; n];
    let mut pre_want = ops::matmul_bias(&normed, &w_kn, if fusion.bias { b } else { &zero_bias }, m, k, n);
    if let Some(a) = fusion.activation {
        ops::activate(&mut pre_want, a);
    }
    let want = if fusion.residual { ops::add(&res[row0 * n..], &pre_want) } else { pre_want.clone() };
    for kernel in MATMULS {
        let (y, ln_out, pre) = matmul_gpu(o, (row0, m, k, n), fusion, kernel);
        let what = format!("{kernel:?} rows {row0}+{m}, {k}x{n}, {fusion:?}");
        if fusion.write_pre {
            assert_close(&pre, &pre_want, &format!("pre {what}"));
        }
        assert_close(&y, &want, &format!("y {what}"));
        if fusion.write_ln {
            assert_close(&ln_out, &normed, &format!("ln_out {what}"));
        }
    }
}

fn activation_strategy() -> impl Strategy<Value = Option<Activation>> {
    prop_oneof![
        Just(None),
        Just(Some(Activation::GeluTanh)),
        Just(Some(Activation::Gelu)),
        Just(Some(Activation::Relu))
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn matmul_bias_matches_cpu((m, k, n, x, w, b) in (1usize..140, 1usize..70, 1usize..140).prop_flat_map(|(m, k, n)| {
        (Just(m), Just(k), Just(n), vector(m * k, 2.0), vector(k * n, 2.0), vector(n, 1.0))
    })) {
        let fusion = MatmulFusion { bias: true, ..Default::default() };
        let want = ops::matmul_bias(&x, &w, &b, m, k, n);
        for kernel in MATMULS {
            let o = Operands { x: x.clone(), w: w.clone(), b: b.clone(), res: Vec::new(), ln: Vec::new() };
            let (y, _, _) = matmul_gpu(&o, (0, m, k, n), fusion, kernel);
            assert_close(&y, &want, &format!("{kernel:?} {m}x{k}x{n}"));
        }
    }

    /// Layernorm prologue, transposed weights, bias, activation, residual and the
    /// extra outputs, on rows after a random offset (what prefix reuse computes).
    #[test]
    fn fused_matmul_matches_cpu_composition(
        (row0, m, k, n, layernorm, transposed, bias, act, residual) in
            (0usize..20, 1usize..90, 1usize..100, 1usize..90, any::<bool>(), any::<bool>(), any::<bool>(),
             activation_strategy(), any::<bool>()),
        seed in any::<u64>(),
    ) {
        let rows = row0 + m;
        let o = random_operands(seed, rows, k, n, 1.0);
        let fusion = MatmulFusion {
            layernorm: layernorm.then_some(1e-5),
            write_ln: layernorm,
            transposed,
            bias,
            activation: act,
            residual,
            write_pre: true,
        };
        check_fused(&o, (row0, m, k, n), fusion);
    }

    /// K and N whole vec4s: matmul_bias.wgsl loads its tiles as vec4.
    #[test]
    fn vec4_tile_loads_match_cpu(
        (row0, m, k4, n4, layernorm, transposed, act) in
            (0usize..10, 1usize..140, 1usize..40, 1usize..40, any::<bool>(), any::<bool>(), activation_strategy()),
        seed in any::<u64>(),
    ) {
        let (k, n) = (4 * k4, 4 * n4);
        let o = random_operands(seed, row0 + m, k, n, 0.5);
        let fusion = every_fusion(layernorm, transposed, act);
        prop_assert!(MatmulParams::new((m, k, n), fusion).flags & 64 != 0, "vec4 flag");
        check_fused(&o, (row0, m, k, n), fusion);
    }

    /// value_range.wgsl: [min, max] of a strided sub-matrix, skipping cells the
    /// mask marks −∞, equals render::raster::value_range (its CPU twin).
    #[test]
    fn value_range_matches_cpu((rows, cols, extra, row0, use_mask) in
        (1usize..40, 1usize..70, 0usize..9, 0usize..5, any::<bool>()),
        seed in any::<u64>(),
    ) {
        let stride = cols + extra;
        let mut rng = common::Lcg(seed);
        let values = rng.vec((row0 + rows) * stride, 5.0);
        // Mask about a third of the cells (and sometimes all of them).
        let masked: Vec<f32> = values.iter().map(|&v| if v > 1.6 || seed % 11 == 0 { f32::NEG_INFINITY } else { v }).collect();
        let params = ValueRangeParams::new(rows, cols, row0 * stride, stride, use_mask);
        let (vb, mb, out) = (upload(gpu(), &values), upload(gpu(), &masked), output(gpu(), 2));
        run(Kernel::ValueRange, &params, &[&vb, &mb, &out], [1, 1, 1]);
        let got = read(&out, 0, 2);
        let pick = |m: &[f32]| {
            Matrix::from_vec(rows, cols, (0..rows * cols).map(|i| m[(row0 + i / cols) * stride + i % cols]).collect())
        };
        let mask_m = pick(&masked);
        let (lo, hi) = raster::value_range(&pick(&values), use_mask.then_some(&mask_m));
        prop_assert_eq!((got[0], got[1]), (lo, hi), "{}×{} stride {} from row {}", rows, cols, stride, row0);
    }

    /// row_norms.wgsl: ‖row‖ of every row into one row of a wider matrix
    /// equals engine::residual::row_norms (its CPU twin, same summation order).
    #[test]
    fn row_norms_match_cpu((rows, d, out_row, extra) in (1usize..130, 1usize..200, 0usize..4, 0usize..7), seed in any::<u64>()) {
        let stride = rows + extra;
        let x = common::Lcg(seed).vec(rows * d, 3.0);
        let params = RowNormsParams { rows: rows as u32, d: d as u32, out_row: out_row as u32, out_stride: stride as u32 };
        let (xb, out) = (upload(gpu(), &x), output(gpu(), (out_row + 1) * stride));
        run(Kernel::RowNorms, &params, &[&xb, &out], params.workgroups());
        assert_close(&read(&out, out_row * stride, rows), &residual::row_norms(&x, d), &format!("{rows}×{d}"));
    }

    /// top_k.wgsl ranks like engine::sampling (ties: lower id first; logits
    /// drawn from few values so ties are common) and its normaliser gives the
    /// CPU's probabilities; ranks past the vocabulary come back empty.
    #[test]
    fn top_k_matches_cpu_ranking((v, rows, k, temperature) in
        (1usize..3000, 1usize..4, 1usize..40, prop_oneof![Just(0.0f32), Just(0.3), Just(1.0), Just(2.5)]),
        seed in any::<u64>(),
    ) {
        let mut rng = common::Lcg(seed);
        let logits: Vec<f32> = rng.vec(rows * v, 1.0).iter().map(|x| (x * 8.0).round() * 1.5).collect();
        let row = rows - 1;
        let params = TopKParams::new(v, row, k, temperature);
        let (lb, out) = (upload(gpu(), &logits), output(gpu(), params.output_len()));
        run(Kernel::TopK, &params, &[&lb, &out], params.workgroups());
        let got = read(&out, 0, params.output_len());
        let last = &logits[row * v..];
        let probs = sampling::probabilities(last, temperature);
        // The ranking by logit (at temperature 0 every probability but one is 0).
        let want = sampling::candidates(&sampling::probabilities(last, 1.0), Some(k), None);
        let max = last.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        prop_assert_eq!(got[0], max);
        for (rank, chunk) in got[2..].chunks_exact(2).enumerate() {
            let id = chunk[0].to_bits();
            match want.get(rank) {
                Some(&(want_id, _)) => {
                    prop_assert_eq!(id, want_id, "rank {}", rank);
                    prop_assert_eq!(chunk[1], last[id as usize]);
                    let p = if temperature > 0.0 {
                        ((chunk[1] as f64 - max as f64) / temperature as f64).exp() / got[1] as f64
                    } else if rank == 0 { 1.0 } else { 0.0 };
                    prop_assert!((p - probs[id as usize]).abs() <= 1e-5, "rank {} p {} vs {}", rank, p, probs[id as usize]);
                }
                None => prop_assert_eq!(id, u32::MAX, "rank {} past V = {}", rank, v),
            }
        }
    }

    /// matmul_skinny.wgsl past its staging sizes: K over several 256-wide
    /// chunks (and not a multiple of the 8-k tile), N over several 256-column
    /// workgroups, M up to the skinny limit.
    #[test]
    fn skinny_matmul_matches_cpu_on_wide_shapes(
        (row0, m, k, n, layernorm, transposed, act) in
            (0usize..4, 1usize..=SKINNY_MAX_ROWS, 1usize..700, 1usize..600, any::<bool>(), any::<bool>(),
             activation_strategy()),
        seed in any::<u64>(),
    ) {
        let o = random_operands(seed, row0 + m, k, n, 0.2);
        let fusion = every_fusion(layernorm, transposed, act);
        prop_assert_eq!(MatmulParams::new((m, k, n), fusion).kernel(), Kernel::MatmulSkinny);
        check_fused(&o, (row0, m, k, n), fusion);
    }

    #[test]
    fn layernorm_matches_cpu((row0, rows, d, x, ln) in (0usize..10, 1usize..40, 1usize..130).prop_flat_map(|(r0, rows, d)| {
        (Just(r0), Just(rows), Just(d), vector((r0 + rows) * d, 3.0), vector(2 * d, 1.5))
    })) {
        let ctx = gpu();
        let (xb, lb, yb) = (upload(ctx, &x), upload(ctx, &ln), output(ctx, (row0 + rows) * d));
        let params = LayernormParams { rows: rows as u32, d: d as u32, eps: 1e-5, row0: row0 as u32 };
        run(Kernel::Layernorm, &params, &[&xb, &lb, &yb], params.workgroups());
        let want = ops::layernorm(&x[row0 * d..], &ln[..d], &ln[d..], d, 1e-5);
        assert_close(&read(&yb, row0 * d, rows * d), &want, &format!("layernorm rows {row0}+{rows}, d {d}"));
    }

    /// The token table split in two chunks, one dispatch each, rows after an offset.
    #[test]
    fn embed_matches_cpu((vocab, d, t, row0, wte, wpe, ids, split) in (2usize..50, 1usize..70, 1usize..40, 0usize..5)
        .prop_flat_map(|(v, d, t, r0)| {
            (Just(v), Just(d), Just(t + r0), Just(r0), vector(v * d, 1.0), vector((t + r0) * d, 1.0),
             prop::collection::vec(0..v as u32, t + r0), 1..v)
        })) {
        let ctx = gpu();
        let ids_buf = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None, contents: bytemuck::cast_slice(&ids), usage: wgpu::BufferUsages::STORAGE,
        });
        let (peb, xb) = (upload(ctx, &wpe), output(ctx, t * d));
        for (v0, vn) in [(0, split), (split, vocab - split)] {
            let chunk = upload(ctx, &wte[v0 * d..(v0 + vn) * d]);
            let p = EmbedParams { m: (t - row0) as u32, d: d as u32, row0: row0 as u32, v0: v0 as u32, vn: vn as u32, _pad: [0; 3] };
            run(Kernel::Embed, &p, &[&ids_buf, &chunk, &peb, &xb], p.workgroups());
        }
        let want = ops::embed(&ids, &wte, &wpe, d);
        assert_close(&read(&xb, row0 * d, (t - row0) * d), &want[row0 * d..], &format!("embed T={t} d={d} split {split}"));
    }

    /// Scores, scale, mask, softmax and W·V of rows row0..T, with matrices strided by a capacity ≥ T.
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
        let shape = AttentionShape { m: t - row0, t, n_head, d_head, row0, mask };
        run(Kernel::AttentionRows, &shape.rows_params(cap).unwrap(), &[&qb, &rawb, &maskedb, &wb, &ob], shape.rows_workgroups());
        // The CPU twin (engine::kernels::attention_rows) on the same layout:
        // whole buffers compare, rows before row0 included (zero on both).
        let (mut raw_cpu, mut masked_cpu, mut weights_cpu, mut out_cpu) =
            (vec![0.0; len], vec![0.0; len], vec![0.0; len], vec![0.0; t * d]);
        let mut dst = ScoreRows {
            raw: &mut raw_cpu,
            masked: &mut masked_cpu,
            weights: &mut weights_cpu,
            out: &mut out_cpu,
            cap,
            rows: cap,
            first_row: 0,
        };
        let rows = AttentionRows { row0, m: t - row0, t, n_head, d_head, mask };
        kernels::attention_rows(&rows, &QkvRows::fused(&qkv, d), &mut dst);
        let what = format!("T={t} rows {row0}.. cap {cap} H={n_head} d_head={d_head} {mask:?}");
        assert_close(&read(&rawb, 0, len), &raw_cpu, &format!("raw {what}"));
        assert_close(&read(&maskedb, 0, len), &masked_cpu, &format!("masked {what}"));
        assert_close(&read(&wb, 0, len), &weights_cpu, &format!("weights {what}"));
        assert_close(&read(&ob, 0, t * d), &out_cpu, &format!("W·V {what}"));
    }

    /// Flash attention never materialises T×T and equals the naive path.
    #[test]
    fn flash_attention_equals_naive((t, n_head, d_head, mask, row0, qkv) in
        (1usize..80, 1usize..4, prop::sample::select(vec![8usize, 16, 64, 80]), mask_strategy(), 0usize..80)
            .prop_flat_map(|(t, h, dh, mask, r0)| {
                (Just(t), Just(h), Just(dh), Just(mask), Just(r0 % t), vector(t * 3 * h * dh, 1.0))
            })
    ) {
        let ctx = gpu();
        let d = n_head * d_head;
        let (qb, ob) = (upload(ctx, &qkv), output(ctx, t * d));
        let shape = AttentionShape { m: t - row0, t, n_head, d_head, row0, mask };
        run(Kernel::FlashAttention, &shape.flash_params().unwrap(), &[&qb, &ob], shape.flash_workgroups());
        let (_, masked) = ops::attention_scores(&qkv, t, n_head, d_head, mask);
        let want = ops::weighted_sum(&ops::softmax_rows(&masked, t), &qkv, t, n_head, d_head);
        let what = format!("flash T={t} rows {row0}.. H={n_head} d_head={d_head} {mask:?}");
        assert_close(&read(&ob, row0 * d, (t - row0) * d), &want[row0 * d..], &what);
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
        let (rawb, maskedb, wb, ob, fb) =
            (output(ctx, len), output(ctx, len), output(ctx, len), output(ctx, t * d_head), output(ctx, t * d_head));
        let shape = AttentionShape { m: t, t, n_head: 1, d_head, row0: 0, mask };
        run(
            Kernel::AttentionRows,
            &shape.rows_params(t).unwrap(),
            &[&qb, &rawb, &maskedb, &wb, &ob],
            shape.rows_workgroups(),
        );
        run(Kernel::FlashAttention, &shape.flash_params().unwrap(), &[&qb, &fb], shape.flash_workgroups());
        let (_, masked) = ops::attention_scores(&qkv, t, 1, d_head, mask);
        let weights = ops::softmax_rows(&masked, t);
        let got = read(&wb, 0, len);
        assert!(got.iter().all(|w| w.is_finite()), "{mask:?}: no NaN or ∞ in weights: {got:?}");
        assert_close(&got, &weights, &format!("weights {mask:?}"));
        let out = ops::weighted_sum(&weights, &qkv, t, 1, d_head);
        assert_close(&read(&ob, 0, t * d_head), &out, &format!("W·V {mask:?}"));
        assert_close(&read(&fb, 0, t * d_head), &out, &format!("flash {mask:?}"));
    }
}

#[test]
fn too_many_workgroups_is_an_error_not_a_crash() {
    let ctx = gpu();
    let limit = ctx.device.limits().max_compute_workgroups_per_dimension as usize;
    let (a, b) = (output(ctx, 1), output(ctx, 1));
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    let params = LayernormParams { rows: ((limit + 1) * 64) as u32, d: 1, eps: 1e-5, row0: 0 };
    let err =
        kernels().dispatch(ctx, &mut enc, Kernel::Layernorm, &params, &[&a, &a, &b], params.workgroups()).unwrap_err();
    assert!(err.to_string().contains("workgroups"), "{err}");
}

#[test]
fn attention_shapes_past_the_kernel_limits_are_refused() {
    let too_wide = AttentionShape { m: 1, t: 4, n_head: 1, d_head: 200, row0: 0, mask: Mask::Causal };
    assert!(too_wide.flash_params().unwrap_err().to_string().contains("d_head"));
    let too_long = AttentionShape { m: 1, t: 2000, n_head: 1, d_head: 64, row0: 0, mask: Mask::Causal };
    assert!(too_long.rows_params(2048).is_err());
    let rows_past_t = AttentionShape { m: 3, t: 4, n_head: 1, d_head: 8, row0: 2, mask: Mask::Causal };
    assert!(rows_past_t.rows_params(4).is_err());
}
