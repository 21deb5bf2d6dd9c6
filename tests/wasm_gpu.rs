//! The WGSL kernels and the whole forward pass run through WebGPU in headless
//! Chromium (SwiftShader), checked against the CPU reference compiled to wasm.
//! Run by tools/test.sh with wasm-bindgen-test-runner; shapes are small
//! because SwiftShader is a CPU emulation.
#![cfg(target_arch = "wasm32")]

use attnscope::engine::{forward_cpu, ops, sampling, Mask};
use attnscope::gpu::{
    read_f32, AttentionShape, EmbedParams, GpuContext, GpuForward, Kernel, Kernels, LayernormParams, MatmulFusion,
    MatmulParams, RunOptions, Stage, TopKParams,
};
use attnscope::model::Activation;
use attnscope::model::Model;
use wasm_bindgen_test::*;
use wgpu::util::DeviceExt;

#[path = "common/buffers.rs"]
mod buffers;
use buffers::{output, upload};

wasm_bindgen_test_configure!(run_in_browser);

/// Deterministic pseudo-random values in [-scale, scale).
fn values(len: usize, seed: u32, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

#[path = "common/close.rs"]
#[allow(dead_code)]
mod close;

fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
    close::assert_within(actual, expected, close::BROWSER, what);
}

async fn context() -> GpuContext {
    match GpuContext::new().await {
        Ok(ctx) => ctx,
        Err(e) => panic!("no WebGPU adapter in this browser: {e}. Chromium needs the flags in webdriver.json."),
    }
}

fn run<P: bytemuck::Pod>(ctx: &GpuContext, k: &Kernels, kernel: Kernel, p: &P, bufs: &[&wgpu::Buffer], wg: [u32; 3]) {
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    k.dispatch(ctx, &mut enc, kernel, p, bufs, wg).unwrap();
    ctx.queue.submit([enc.finish()]);
}

/// One matmul kernel with every fusion against the CPU composition.
async fn check_matmul(ctx: &GpuContext, k: &Kernels, kernel: Kernel, (m, kk, n): (usize, usize, usize)) {
    let (x, w, b, res, ln) = (
        values(m * kk, 1, 2.0),
        values(kk * n, 2, 2.0),
        values(n, 3, 1.0),
        values(m * n, 4, 1.0),
        values(2 * kk, 5, 1.5),
    );
    let (xb, wb, bb, rb, lb) = (upload(ctx, &x), upload(ctx, &w), upload(ctx, &b), upload(ctx, &res), upload(ctx, &ln));
    let (yb, lnb, preb) = (output(ctx, m * n), output(ctx, m * kk), output(ctx, m * n));
    let fusion = MatmulFusion {
        layernorm: Some(1e-5),
        write_ln: true,
        bias: true,
        activation: Some(Activation::GeluTanh),
        residual: true,
        write_pre: true,
        ..Default::default()
    };
    let mp = MatmulParams::new((m, kk, n), fusion);
    run(ctx, k, kernel, &mp, &[&xb, &wb, &bb, &yb, &rb, &lb, &lnb, &preb], mp.workgroups_for(kernel));
    let normed = ops::layernorm(&x, &ln[..kk], &ln[kk..], kk, 1e-5);
    let mut pre = ops::matmul_bias(&normed, &w, &b, m, kk, n);
    ops::activate(&mut pre, Activation::GeluTanh);
    let what = format!("{kernel:?} {m}×{kk}×{n}");
    assert_close(&read_f32(ctx, &lnb, 0, m * kk).await.unwrap(), &normed, &format!("{what} ln_out"));
    assert_close(&read_f32(ctx, &preb, 0, m * n).await.unwrap(), &pre, &format!("{what} pre-residual"));
    assert_close(&read_f32(ctx, &yb, 0, m * n).await.unwrap(), &ops::add(&res, &pre), &what);
}

#[wasm_bindgen_test]
async fn every_kernel_matches_the_cpu_reference_through_webgpu() {
    let ctx = context().await;
    let k = ctx
        .checked(|| {
            let k = Kernels::new(&ctx);
            k.compile_all();
            Ok(k)
        })
        .await
        .expect("all kernels compile in the browser");

    // Both matmul kernels, fused: layernorm prologue, bias, GELU, residual, on
    // an odd shape (not a multiple of any tile) and an aligned one (vec4 loads).
    for kernel in [Kernel::MatmulBias, Kernel::MatmulSkinny] {
        for shape in [(7, 13, 11), (5, 24, 36)] {
            check_matmul(&ctx, &k, kernel, shape).await;
        }
    }

    // top_k: the 5 largest of row 1 of a 2×300 logits matrix, at temperature 0.8.
    let logits = values(600, 11, 4.0);
    let tp = TopKParams::new(300, 1, 5, 0.8);
    let (tlb, tob) = (upload(&ctx, &logits), output(&ctx, tp.output_len()));
    run(&ctx, &k, Kernel::TopK, &tp, &[&tlb, &tob], tp.workgroups());
    let got = read_f32(&ctx, &tob, 0, tp.output_len()).await.unwrap();
    let probs = sampling::probabilities(&logits[300..], 0.8);
    let want = sampling::candidates(&probs, Some(5), None);
    for (rank, &(id, p)) in want.iter().enumerate() {
        assert_eq!(got[2 + 2 * rank].to_bits(), id, "top-k rank {rank}");
        let logit = got[3 + 2 * rank];
        let p_gpu = ((logit - got[0]) as f64 / 0.8).exp() / got[1] as f64;
        assert!((p_gpu - probs[id as usize]).abs() < 1e-5, "top-k p rank {rank}: {p_gpu} vs {p}");
    }

    // layernorm, rows 2..7 of 33.
    let lx = values(7 * 33, 6, 3.0);
    let (lxb, lyb) = (upload(&ctx, &lx), output(&ctx, 7 * 33));
    let lp = LayernormParams { rows: 5, d: 33, eps: 1e-5, row0: 2, rms: 0, _pad: [0; 3] };
    let ln33 = values(66, 7, 1.5);
    let ln33b = upload(&ctx, &ln33);
    run(&ctx, &k, Kernel::Layernorm, &lp, &[&lxb, &ln33b, &lyb], lp.workgroups());
    assert_close(
        &read_f32(&ctx, &lyb, 66, 5 * 33).await.unwrap(),
        &ops::layernorm(&lx[66..], &ln33[..33], &ln33[33..], 33, 1e-5),
        "layernorm",
    );

    // embed: T=6, d=10, vocab 9 in one chunk.
    let ids = [3u32, 0, 8, 8, 1, 5];
    let (wte, wpe) = (values(9 * 10, 8, 1.0), values(6 * 10, 9, 1.0));
    let ids_buf = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: bytemuck::cast_slice(&ids),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let (teb, peb, eb) = (upload(&ctx, &wte), upload(&ctx, &wpe), output(&ctx, 6 * 10));
    let ep = EmbedParams { m: 6, d: 10, row0: 0, v0: 0, vn: 9, positions: 1, half: 0, _pad: 0 };
    run(&ctx, &k, Kernel::Embed, &ep, &[&ids_buf, &teb, &peb, &eb], ep.workgroups());
    assert_close(&read_f32(&ctx, &eb, 0, 60).await.unwrap(), &ops::embed(&ids, &wte, &wpe, 10), "embed");

    // attention_rows and both flash kernels: T=9, 2 heads of 16, causal.
    let (t, h, dh) = (9, 2, 16);
    let qkv = values(t * 3 * h * dh, 10, 0.5);
    let qb = upload(&ctx, &qkv);
    let (rawb, maskb, wtb, ob, fb, frb) = (
        output(&ctx, h * t * t),
        output(&ctx, h * t * t),
        output(&ctx, h * t * t),
        output(&ctx, t * h * dh),
        output(&ctx, t * h * dh),
        output(&ctx, t * h * dh),
    );
    let shape = AttentionShape { m: t, t, n_head: h, n_kv_head: h, d_head: dh, row0: 0, mask: Mask::Causal };
    run(
        &ctx,
        &k,
        Kernel::AttentionRows,
        &shape.rows_params(t).unwrap(),
        &[&qb, &rawb, &maskb, &wtb, &ob],
        shape.rows_workgroups(),
    );
    run(&ctx, &k, Kernel::FlashAttention, &shape.flash_params().unwrap(), &[&qb, &fb], shape.flash_workgroups());
    run(&ctx, &k, Kernel::FlashRows, &shape.flash_params().unwrap(), &[&qb, &frb], shape.flash_rows_workgroups());
    let (raw_cpu, masked_cpu) = ops::attention_scores(&qkv, t, h, dh, Mask::Causal);
    let weights_cpu = ops::softmax_rows(&masked_cpu, t);
    let out_cpu = ops::weighted_sum(&weights_cpu, &qkv, t, h, dh);
    assert_close(&read_f32(&ctx, &rawb, 0, h * t * t).await.unwrap(), &raw_cpu, "scores raw");
    assert_close(&read_f32(&ctx, &maskb, 0, h * t * t).await.unwrap(), &masked_cpu, "scores masked");
    assert_close(&read_f32(&ctx, &wtb, 0, h * t * t).await.unwrap(), &weights_cpu, "softmax");
    assert_close(&read_f32(&ctx, &ob, 0, t * h * dh).await.unwrap(), &out_cpu, "A·V");
    assert_close(&read_f32(&ctx, &fb, 0, t * h * dh).await.unwrap(), &out_cpu, "flash attention");
    assert_close(&read_f32(&ctx, &frb, 0, t * h * dh).await.unwrap(), &out_cpu, "flash attention, a workgroup per row");
    assert_eq!(ctx.fault(), None);
}

#[wasm_bindgen_test]
async fn whole_forward_on_the_placeholder_model_matches_the_cpu_in_the_browser() {
    let model = Model::from_bytes(
        "placeholder",
        include_bytes!("fixtures/placeholder/config.json"),
        include_bytes!("fixtures/placeholder/model.safetensors"),
        include_bytes!("fixtures/placeholder/tokenizer.json"),
    )
    .unwrap();
    let ctx = context().await;
    let mut fwd = GpuForward::new(&ctx, &model).unwrap();
    for (text, mask) in [("Now is the winter", Mask::Causal), ("of our discontent", Mask::Window(2))] {
        let tokens = model.tokenizer.encode(text).unwrap();
        let cpu = forward_cpu(&model.config, &model.weights, tokens.clone(), mask).unwrap();
        let gpu = fwd.trace(&ctx, tokens, mask, true).await.unwrap();
        for (l, (lg, lc)) in gpu.layers.iter().zip(&cpu.layers).enumerate() {
            for (h, (hg, hc)) in lg.heads().iter().zip(lc.heads()).enumerate() {
                assert_close(
                    &hg.weights().to_matrix().data,
                    &hc.weights().to_matrix().data,
                    &format!("weights {text:?}"),
                );
                // The GPU's masked scores as its kernel wrote them (the trace derives them from the raw).
                let masked = fwd.read_head(&ctx, Stage::ScoresMasked, l, h).await.unwrap();
                assert_close(&masked, &hc.scores_masked().data, &format!("masked scores {text:?}"));
                assert_close(&hg.output.data, &hc.output.data, &format!("A·V {text:?}"));
            }
        }
        assert_close(&gpu.logits.data, &cpu.logits.data, &format!("logits {text:?}"));
    }
    // Typing one more word reuses the cached prefix and gives the same logits as a fresh run.
    let ids: Vec<u32> = model.tokenizer.encode("Now is the winter of").unwrap().iter().map(|t| t.id).collect();
    fwd.run(&ctx, &ids[..ids.len() - 1], RunOptions::fast(Mask::Causal)).unwrap();
    let stats = fwd.run(&ctx, &ids, RunOptions::fast(Mask::Causal)).unwrap();
    assert_eq!(stats.reused_prefix, ids.len() - 1);
    let cached = fwd.begin_read_last_logits(&ctx).unwrap().finish(&ctx).await.unwrap();
    let cpu = model.trace_ids(&ids, Mask::Causal).unwrap();
    assert_close(&cached[..model.config.vocab_size], cpu.logits.row(ids.len() - 1), "logits with the KV cache");
    let top = fwd.begin_read_top_k(&ctx, 3, 1.0).unwrap().finish(&ctx).await.unwrap();
    let probs = sampling::probabilities(cpu.logits.row(ids.len() - 1), 1.0);
    for (rank, &(id, _)) in sampling::candidates(&probs, Some(3), None).iter().enumerate() {
        assert_eq!(top.tokens[rank].0, id, "top-3 rank {rank}");
        assert!((top.probability(rank) - probs[id as usize]).abs() < 1e-5, "top-3 probability rank {rank}");
    }
}
