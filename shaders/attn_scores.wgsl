// attn_scores.wgsl: raw Q·Kᵀ, the 1/√d_head scaling and the mask, all heads in one dispatch.
//
// Shapes (row-major f32):
//   qkv[T×3d]       fused projection: Q in columns [0, d), K in [d, 2d), V in [2d, 3d);
//                   head h uses columns h·d_head .. (h+1)·d_head of each.
//   raw[H×T×T]      out: raw[h, i, j] = Q_h[i] · K_h[j]
//   masked[H×T×T]   out: raw · scale where the mask allows key j for query i, else −∞
//                   (the bit pattern 0xff800000, passed in as `neg_inf_bits` and written as
//                   bits: a constant ∞ is a shader-creation error in WebGPU, and no float ∞
//                   arithmetic happens).
// Mask modes: 0 causal (j ≤ i), 1 bidirectional, 2 sliding window (i − w < j ≤ i).
// One invocation per (j, i, h): gid.x = key j, gid.y = query i, gid.z = head h.
// Workgroup 8×8×1; dispatch (ceil(T/8), ceil(T/8), H).
// CPU reference: engine::ops::attention_scores.

struct Params {
    t: u32,
    n_head: u32,
    d_head: u32,
    mask_mode: u32,
    window: u32,
    scale: f32,
    neg_inf_bits: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> raw: array<f32>;
@group(0) @binding(3) var<storage, read_write> masked: array<f32>;

fn allowed(i: u32, j: u32) -> bool {
    switch p.mask_mode {
        case 1u: { return true; }
        case 2u: { return j <= i && i - j < p.window; }
        default: { return j <= i; }
    }
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let i = gid.y;
    let h = gid.z;
    if i >= p.t || j >= p.t || h >= p.n_head {
        return;
    }
    let d = p.n_head * p.d_head;
    let q_base = i * 3u * d + h * p.d_head;
    let k_base = j * 3u * d + d + h * p.d_head;
    var s = 0.0;
    for (var c = 0u; c < p.d_head; c++) {
        s += qkv[q_base + c] * qkv[k_base + c];
    }
    let at = (h * p.t + i) * p.t + j;
    raw[at] = s;
    if allowed(i, j) {
        masked[at] = s * p.scale;
    } else {
        masked[at] = bitcast<f32>(p.neg_inf_bits);
    }
}
