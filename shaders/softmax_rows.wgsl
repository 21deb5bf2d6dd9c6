// softmax_rows.wgsl: numerically stable softmax of each row (max subtracted first).
//
// Shapes (row-major f32):
//   scores[R×N] in; entries whose bits are 0xff800000 (−∞, from attn_scores) are masked.
//   weights[R×N] out; masked entries are 0, and a fully masked row is all 0, never NaN.
// Masked entries are recognised by their bits, so no float ∞ arithmetic happens.
// One invocation per row. Workgroup 64; dispatch (ceil(R/64), 1, 1).
// CPU reference: engine::ops::softmax_rows.

struct Params {
    rows: u32,
    n: u32,
    _pad0: u32,
    _pad1: u32,
}

const NEG_INF_BITS: u32 = 0xff800000u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read_write> weights: array<f32>;

fn is_masked(s: f32) -> bool {
    return bitcast<u32>(s) == NEG_INF_BITS;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x;
    if row >= p.rows {
        return;
    }
    let base = row * p.n;
    var m = -3.0e38;
    var any = false;
    for (var j = 0u; j < p.n; j++) {
        let s = scores[base + j];
        if !is_masked(s) {
            m = max(m, s);
            any = true;
        }
    }
    var sum = 0.0;
    for (var j = 0u; j < p.n; j++) {
        let s = scores[base + j];
        var e = 0.0;
        if any && !is_masked(s) {
            e = exp(s - m);
        }
        weights[base + j] = e;
        sum += e;
    }
    if !any {
        return;
    }
    let inv = 1.0 / sum;
    for (var j = 0u; j < p.n; j++) {
        weights[base + j] = weights[base + j] * inv;
    }
}
