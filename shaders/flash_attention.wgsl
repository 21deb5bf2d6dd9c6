// flash_attention.wgsl: attention output A·V without materialising the T×T
// scores: keys and values are walked in tiles through workgroup memory with an
// online (running max, running sum) softmax. Used when the trace does not need
// the matrices (generation, benchmarks); equal to attention_rows.wgsl's `out`.
//
// Shapes (row-major f32):
//   qkv[·×(n_head + 2·n_kv_head)·d_head]  fused projection: Q, K, V side by side
//               (attention_common.wgsl's q_col/k_col/v_col; 3d wide for GPT-2).
//   out[·×n_head·d_head]  out: rows row0 .. row0+M, head h in columns h·d_head ..
// Keys 0 .. T. Mask modes: 0 causal, 1 bidirectional, 2 sliding window (i − w < j ≤ i);
// tiles wholly outside every row's mask are skipped. A row with no allowed key gives 0.
// One invocation per query row: q and the output accumulator live in registers
// (d_head ≤ 128). A key tile holds 2048 / d_head keys (at most 64) of K and V:
// 16 KiB of workgroup memory, the WebGPU default limit.
// Workgroup 64; dispatch (ceil(M/64), H, 1).
// The uniform block, the qkv binding and the mask rule are in
// attention_common.wgsl, prepended by gpu::kernels.
// CPU reference: engine::ops::attention_scores → softmax_rows → weighted_sum.

const MAX_D_HEAD: u32 = 128u;
const TILE_WORDS: u32 = 2048u;

@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> k_s: array<f32, 2048>;
var<workgroup> v_s: array<f32, 2048>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let h = wg.y;
    let d = p.n_head * p.d_head;
    let stride = qkv_stride();
    let first = p.row0 + wg.x * WG;
    let last = min(first + WG, p.row0 + p.m) - 1u; // last row of this workgroup
    let i = first + lid;
    let in_range = i <= last;
    let neg_inf = bitcast<f32>(p.neg_inf_bits);
    let tile = min(TILE_WORDS / p.d_head, 64u);

    var q: array<f32, MAX_D_HEAD>;
    var acc: array<f32, MAX_D_HEAD>;
    for (var c = 0u; c < p.d_head; c++) {
        acc[c] = 0.0;
        q[c] = 0.0;
        if in_range {
            q[c] = qkv[i * stride + q_col(h) + c];
        }
    }
    var run_max = neg_inf;
    var run_sum = 0.0;

    // Keys any row of this workgroup may see.
    var key_end = p.t;
    var key_start = 0u;
    if p.mask_mode != 1u {
        key_end = min(p.t, last + 1u);
    }
    if p.mask_mode == 2u && first + 1u > p.window {
        key_start = ((first + 1u - p.window) / tile) * tile;
    }

    for (var j0 = key_start; j0 < key_end; j0 += tile) {
        let n = min(tile, key_end - j0);
        for (var at = lid; at < n * p.d_head; at += WG) {
            let j = j0 + at / p.d_head;
            let c = at % p.d_head;
            k_s[at] = qkv[j * stride + k_col(h) + c];
            v_s[at] = qkv[j * stride + v_col(h) + c];
        }
        workgroupBarrier();
        if in_range {
            // The tile's scores, kept in registers, and their max.
            var s_tile: array<f32, 64>;
            var tile_max = neg_inf;
            for (var jj = 0u; jj < n; jj++) {
                var s = neg_inf;
                if allowed(i, j0 + jj) {
                    var dot = 0.0;
                    for (var c = 0u; c < p.d_head; c++) {
                        dot += q[c] * k_s[jj * p.d_head + c];
                    }
                    s = dot * p.scale;
                    tile_max = max(tile_max, s);
                }
                s_tile[jj] = s;
            }
            if tile_max != neg_inf {
                let new_max = max(run_max, tile_max);
                var correction = 0.0;
                if run_max != neg_inf {
                    correction = exp(run_max - new_max);
                }
                run_sum *= correction;
                for (var c = 0u; c < p.d_head; c++) {
                    acc[c] *= correction;
                }
                for (var jj = 0u; jj < n; jj++) {
                    if s_tile[jj] != neg_inf {
                        let e = exp(s_tile[jj] - new_max);
                        run_sum += e;
                        for (var c = 0u; c < p.d_head; c++) {
                            acc[c] += e * v_s[jj * p.d_head + c];
                        }
                    }
                }
                run_max = new_max;
            }
        }
        workgroupBarrier();
    }
    if in_range {
        for (var c = 0u; c < p.d_head; c++) {
            var o = 0.0;
            if run_sum > 0.0 {
                o = acc[c] / run_sum;
            }
            out[i * d + h * p.d_head + c] = o;
        }
    }
}
