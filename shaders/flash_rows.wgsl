// flash_rows.wgsl: flash attention for a few query rows (generation's new
// token, a short untraced append): the output A·V with an online softmax and
// no T×T score kept, like flash_attention.wgsl, but each query row of each
// head gets a whole workgroup. Its invocations stride over the keys for the
// scores (a tile of up to 1024 keys at a time in workgroup memory), then
// over the d_head outputs for the tile's A·V. flash_attention.wgsl gives a
// row one invocation that walks every key alone (about T·d_head dependent
// steps, a few milliseconds per layer at T = 512 on a large GPU, which ran
// 9 workgroups for one row of SmolLM2's 9 heads); here the longest chain is
// about T·d_head / 64 + T steps.
//
// Shapes (row-major f32):
//   qkv[·×(n_head + 2·n_kv_head)·d_head]  fused projection: Q, K, V side by side
//               (attention_common.wgsl's q_col/k_col/v_col; 3d wide for GPT-2).
//   out[·×n_head·d_head]  out: rows row0 .. row0+M, head h in columns h·d_head ..
// Keys 0 .. T. Mask modes: 0 causal, 1 bidirectional, 2 sliding window
// (i − w < j ≤ i); only the keys a row may see are read. A row with no
// allowed key gives 0. Each tile rescales the running sum and outputs by
// exp(old max − new max), as flash_attention.wgsl does per tile.
// Limits: d_head ≤ 128 (MAX_FLASH_D_HEAD: two outputs per invocation).
// Workgroup 64 (WG); dispatch (M, H, 1): workgroup (r, h) is query row
// row0 + r of head h. gpu::AttentionShape::flash_kernel picks this kernel
// for at most FLASH_ROWS_MAX_M rows, flash_attention.wgsl for more.
// The uniform block, the qkv binding and the mask rule are in
// attention_common.wgsl; q_s, row_s and the reductions in
// attention_row_common.wgsl; both prepended by gpu::kernels.
// CPU reference: engine::ops::attention_scores → softmax_rows → weighted_sum.

const TILE: u32 = ROW_S_KEYS;
const OUTS: u32 = 2u; // outputs per invocation: MAX_FLASH_D_HEAD / WG

@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let i = p.row0 + wg.x;
    let h = wg.y;
    let stride = qkv_stride();
    let neg_inf = bitcast<f32>(p.neg_inf_bits);
    stage_q(lid, i, h);

    // The keys row i may see (the same for the whole workgroup).
    var key_start = 0u;
    var key_end = p.t;
    if p.mask_mode != 1u {
        key_end = min(p.t, i + 1u);
    }
    if p.mask_mode == 2u {
        key_start = key_end;
        if p.window > 0u {
            key_start = select(0u, i + 1u - p.window, i + 1u > p.window);
        }
    }

    var run_max = neg_inf;
    var run_sum = 0.0;
    var acc: array<f32, OUTS>;
    for (var k = 0u; k < OUTS; k++) {
        acc[k] = 0.0;
    }
    for (var j0 = key_start; j0 < key_end; j0 += TILE) {
        let n = min(TILE, key_end - j0);
        // The tile's scaled scores and their max.
        var local_max = neg_inf;
        for (var jj = lid; jj < n; jj += WG) {
            var s = neg_inf;
            if allowed(i, j0 + jj) {
                s = q_dot_k(j0 + jj, h) * p.scale;
                local_max = max(local_max, s);
            }
            row_s[jj] = s;
        }
        let tile_max = reduce_max(lid, local_max);
        let new_max = max(run_max, tile_max);
        // exp(s − new max) in place; nothing allowed yet leaves every weight 0.
        var local_sum = 0.0;
        for (var jj = lid; jj < n; jj += WG) {
            var e = 0.0;
            if row_s[jj] != neg_inf {
                e = exp(row_s[jj] - new_max);
            }
            row_s[jj] = e;
            local_sum += e;
        }
        let tile_sum = reduce_sum(lid, local_sum);
        var correction = 0.0;
        if run_max != neg_inf {
            correction = exp(run_max - new_max);
        }
        run_sum = run_sum * correction + tile_sum;
        run_max = new_max;
        // The tile's A·V, one output column per invocation per step (coalesced V reads).
        for (var k = 0u; k < OUTS; k++) {
            let c = lid + k * WG;
            if c < p.d_head {
                var o = acc[k] * correction;
                for (var jj = 0u; jj < n; jj++) {
                    o += row_s[jj] * qkv[(j0 + jj) * stride + v_col(h) + c];
                }
                acc[k] = o;
            }
        }
        // row_s is the next tile's.
        workgroupBarrier();
    }
    for (var k = 0u; k < OUTS; k++) {
        let c = lid + k * WG;
        if c < p.d_head {
            var o = 0.0;
            if run_sum > 0.0 {
                o = acc[k] / run_sum;
            }
            out[i * p.n_head * p.d_head + h * p.d_head + c] = o;
        }
    }
}
