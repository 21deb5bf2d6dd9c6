// weighted_sum.wgsl: each head's attention output W·V, heads concatenated.
//
// Shapes (row-major f32):
//   weights[H×T×T]  softmax weights (0 where masked)
//   qkv[T×3d]       fused projection; V in columns [2d, 3d), head h at 2d + h·d_head
//   out[T×d]        out[i, h·d_head + c] = Σ_j weights[h, i, j] · V_h[j, c]
// One invocation per output element: gid.x = column (0..d), gid.y = query row i.
// Workgroup 8×8; dispatch (ceil(d/8), ceil(T/8), 1).
// CPU reference: engine::ops::weighted_sum.

struct Params {
    t: u32,
    n_head: u32,
    d_head: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let d = p.n_head * p.d_head;
    let col = gid.x;
    let i = gid.y;
    if col >= d || i >= p.t {
        return;
    }
    let h = col / p.d_head;
    let w_base = (h * p.t + i) * p.t;
    var acc = 0.0;
    for (var j = 0u; j < p.t; j++) {
        acc += weights[w_base + j] * qkv[j * 3u * d + 2u * d + col];
    }
    out[i * d + col] = acc;
}
