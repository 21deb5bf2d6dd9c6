//! The row-wise kernels (layernorm, embed, row_norms, value_range, top_k) against their CPU twins
//! (engine::ops, engine::residual, render::raster, engine::sampling) on random shapes,
//! through wgpu on whatever adapter is present (lavapipe in CI).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use attnscope::engine::{ops, residual, sampling, Matrix};
use attnscope::gpu::{EmbedParams, Kernel, LayernormParams, RowNormsParams, TopKParams, ValueRangeParams};
use attnscope::render::raster;
use common::kernels::{kernels, read, run, vector};
use common::{assert_close, gpu};
use proptest::prelude::*;
use wgpu::util::DeviceExt;

#[path = "common/buffers.rs"]
mod buffers;
use buffers::{output, upload};

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

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
        let (lo, hi) = raster::value_range(&pick(&values), use_mask.then_some(raster::Hidden::Cells(&mask_m)));
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

    #[test]
    fn layernorm_matches_cpu((row0, rows, d, x, ln) in (0usize..10, 1usize..40, 1usize..130).prop_flat_map(|(r0, rows, d)| {
        (Just(r0), Just(rows), Just(d), vector((r0 + rows) * d, 3.0), vector(2 * d, 1.5))
    })) {
        let ctx = gpu();
        let (xb, lb, yb) = (upload(ctx, &x), upload(ctx, &ln), output(ctx, (row0 + rows) * d));
        let params = LayernormParams { rows: rows as u32, d: d as u32, eps: 1e-5, row0: row0 as u32, rms: 0, _pad: [0; 3] };
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
            let p = EmbedParams { m: (t - row0) as u32, d: d as u32, row0: row0 as u32, v0: v0 as u32, vn: vn as u32, positions: 1, half: 0, _pad: 0 };
            run(Kernel::Embed, &p, &[&ids_buf, &chunk, &peb, &xb], p.workgroups());
        }
        let want = ops::embed(&ids, &wte, &wpe, d);
        assert_close(&read(&xb, row0 * d, (t - row0) * d), &want[row0 * d..], &format!("embed T={t} d={d} split {split}"));
    }
}

#[test]
fn too_many_workgroups_is_an_error_not_a_crash() {
    let ctx = gpu();
    let limit = ctx.device.limits().max_compute_workgroups_per_dimension as usize;
    let (a, b) = (output(ctx, 1), output(ctx, 1));
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    let params = LayernormParams { rows: ((limit + 1) * 64) as u32, d: 1, eps: 1e-5, row0: 0, rms: 0, _pad: [0; 3] };
    let err =
        kernels().dispatch(ctx, &mut enc, Kernel::Layernorm, &params, &[&a, &a, &b], params.workgroups()).unwrap_err();
    assert!(err.to_string().contains("workgroups"), "{err}");
}

/// Pipelines compile on first use (`Kernels::pipeline`): each one compiles,
/// and `Kernel::ALL` lists every kernel at its own index.
#[test]
fn every_kernel_compiles_on_first_use() {
    for (i, k) in Kernel::ALL.into_iter().enumerate() {
        assert_eq!(k as usize, i, "{k:?} sits at its index in Kernel::ALL");
    }
    let ctx = gpu();
    pollster::block_on(ctx.checked(|| {
        kernels().compile_all();
        Ok(())
    }))
    .expect("every kernel compiles");
}
