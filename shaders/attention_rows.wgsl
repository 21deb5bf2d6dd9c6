// attention_rows.wgsl: the whole attention of one query row of one head, keeping
// every intermediate the trace shows (the "naive" path; flash_attention.wgsl is
// the one that never materialises T×T).
//
// Fused: Q·Kᵀ (raw), ·1/√d_head and the mask (masked, −∞ where forbidden), the
// numerically stable row softmax (weights; a fully masked row gives 0, not NaN)
// and A·V (out). Every head in one dispatch.
//
// Shapes (row-major f32):
//   qkv[·×(n_head + 2·n_kv_head)·d_head]  fused projection: Q, K, V side by side
//                     (attention_common.wgsl's q_col/k_col/v_col; 3d wide for GPT-2).
//   raw, masked, weights[H×cap×cap]  out: element (h, i, j) at (h·cap + i)·cap + j,
//                     for query rows row0 .. row0+M and keys j < T. The row stride is
//                     the buffers' capacity `cap`, not T, so rows computed by an
//                     earlier run stay where they are when the text grows.
//   out[·×n_head·d_head]  out: head h's A·V in columns h·d_head .. (h+1)·d_head.
// −∞ is written as the bit pattern `neg_inf_bits` (a constant ∞ is a shader
// creation error in WebGPU). Mask modes: 0 causal (j ≤ i), 1 bidirectional,
// 2 sliding window (i − w < j ≤ i).
// Limits: d_head ≤ 256; T only by the buffers (T ≤ cap). A row of up to 1024
// keys (ROW_S_KEYS) is worked in workgroup memory (row_s); a longer one in its
// own row of `weights`, which only this workgroup writes (storageBarrier before
// A·V reads what other invocations wrote).
// Kept rows (i < kept, a traced append or edit that keeps rows 0..kept of
// the last run): their softmax and A·V stand, since the mask hides every key
// from `kept` on from them (causal or a window; the caller passes kept = 0
// for a bidirectional mask); only their raw scores against the keys that
// changed or arrived since (j ≥ kept) are new, written with masked −∞ and
// weight 0. So appending a token costs its own row plus one column, O(T),
// not all T rows again, O(T²).
// Workgroup 64: invocations stride over keys, then over the d_head outputs.
// Dispatch (M, H, 1): workgroup (r, h) is query row row0 + r of head h.
// The uniform block, the qkv binding and the mask rule are in
// attention_common.wgsl; the staged query row, the row's scores (row_s) and
// the workgroup reductions in attention_row_common.wgsl; both prepended by
// gpu::kernels.
// CPU reference: engine::ops::attention_scores, softmax_rows, weighted_sum.


@group(0) @binding(2) var<storage, read_write> raw: array<f32>;
@group(0) @binding(3) var<storage, read_write> masked: array<f32>;
@group(0) @binding(4) var<storage, read_write> weights: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let i = p.row0 + wg.x;
    let h = wg.y;
    let d = p.n_head * p.d_head;
    let stride = qkv_stride();
    let neg_inf = bitcast<f32>(p.neg_inf_bits);
    stage_q(lid, i, h);

    if i < p.kept {
        // A kept row: its new column(s) only (uniform: the whole workgroup leaves).
        for (var j = p.kept + lid; j < p.t; j += WG) {
            let at = (h * p.cap + i) * p.cap + j;
            raw[at] = q_dot_k(j, h);
            masked[at] = neg_inf;
            weights[at] = 0.0;
        }
        return;
    }

    // Scores: raw, scaled and masked; the running max of the allowed ones.
    // `in_row_s` is uniform: the whole workgroup takes one path.
    let in_row_s = p.t <= ROW_S_KEYS;
    let base = (h * p.cap + i) * p.cap;
    var local_max = neg_inf;
    for (var j = lid; j < p.t; j += WG) {
        let s = q_dot_k(j, h);
        raw[base + j] = s;
        var m = neg_inf;
        if allowed(i, j) {
            m = s * p.scale;
            local_max = max(local_max, m);
        }
        masked[base + j] = m;
        if in_row_s {
            row_s[j] = m;
        }
    }
    let row_max = reduce_max(lid, local_max);

    // Softmax: exp(s − max) / Σ; a row with no allowed key stays all zero.
    // Each invocation reads back only the keys it wrote itself.
    let any_allowed = row_max != neg_inf;
    var local_sum = 0.0;
    for (var j = lid; j < p.t; j += WG) {
        var e = 0.0;
        if any_allowed && allowed(i, j) {
            var m: f32;
            if in_row_s {
                m = row_s[j];
            } else {
                m = masked[base + j];
            }
            e = exp(m - row_max);
        }
        if in_row_s {
            row_s[j] = e;
        } else {
            weights[base + j] = e;
        }
        local_sum += e;
    }
    let total = reduce_sum(lid, local_sum);
    for (var j = lid; j < p.t; j += WG) {
        var e: f32;
        if in_row_s {
            e = row_s[j];
        } else {
            e = weights[base + j];
        }
        var wv = 0.0;
        if total > 0.0 {
            wv = e / total;
        }
        if in_row_s {
            row_s[j] = wv;
        }
        weights[base + j] = wv;
    }
    workgroupBarrier();
    storageBarrier();

    // A·V for this row, one output column per invocation.
    for (var c = lid; c < p.d_head; c += WG) {
        var o = 0.0;
        if in_row_s {
            for (var j = 0u; j < p.t; j++) {
                o += row_s[j] * qkv[j * stride + v_col(h) + c];
            }
        } else {
            for (var j = 0u; j < p.t; j++) {
                o += weights[base + j] * qkv[j * stride + v_col(h) + c];
            }
        }
        out[i * d + h * p.d_head + c] = o;
    }
}
