//! The matmul kernels (matmul_bias.wgsl, matmul_skinny.wgsl) with every fusion against the CPU composition
//! of their twins in engine::ops, on random shapes and row offsets,
//! through wgpu on whatever adapter is present (lavapipe in CI).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use attnscope::engine::ops;
use attnscope::gpu::{Kernel, MatmulFusion, MatmulParams, SKINNY_MAX_ROWS};
use attnscope::model::Activation;
use common::kernels::{read, run, vector};
use common::{assert_close, gpu};
use proptest::prelude::*;

#[path = "common/buffers.rs"]
mod buffers;
use buffers::{output, upload};

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
        rms: false,
        w16: None,
        write_ln: layernorm,
        transposed,
        bias: true,
        activation,
        residual: true,
        write_pre: true,
        gated: false,
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
fn check_fused(o: &Operands, shape: (usize, usize, usize, usize), fusion: MatmulFusion) {
    check_fused_on(o, shape, fusion, &MATMULS);
}

/// `kernels` against the CPU composition of the same fusions.
fn check_fused_on(
    o: &Operands,
    (row0, m, k, n): (usize, usize, usize, usize),
    fusion: MatmulFusion,
    kernels: &[Kernel],
) {
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
    for &kernel in kernels {
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
            rms: false,
            w16: None,
            write_ln: layernorm,
            transposed,
            bias,
            activation: act,
            residual,
            write_pre: true,
            gated: false,
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
}

/// matmul_skinny.wgsl with more column tiles than one dispatch dimension
/// holds (65,535 workgroups of 64 columns): the tiles fold into z, and the
/// last layer's spare workgroups write nothing. Tiny K keeps w at 16 MB.
#[test]
fn skinny_matmul_folds_wide_outputs_into_z() {
    let (m, k, n) = (2, 1, 65_535 * 64 + 40);
    for transposed in [false, true] {
        let fusion = every_fusion(false, transposed, Some(Activation::Relu));
        let params = MatmulParams::new((m, k, n), fusion);
        assert_eq!(params.kernel(), Kernel::MatmulSkinny);
        assert_eq!(params.workgroups(), [65_535, 1, 2]);
        let o = random_operands(7, m, k, n, 0.5);
        check_fused_on(&o, (0, m, k, n), fusion, &[Kernel::MatmulSkinny]);
    }
}
