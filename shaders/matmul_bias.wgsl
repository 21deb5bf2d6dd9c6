// matmul_bias.wgsl: y = x · w + b.
//
// Shapes (row-major f32):
//   x[M×K], w[K×N] (GPT-2 Conv1D layout [in, out]), b[N], y[M×N] out.
// One invocation per output element: gid.x = column n, gid.y = row m.
// Workgroup 8×8; dispatch (ceil(N/8), ceil(M/8), 1). Correct for any M, N, K ≥ 1.
// (The tiled shared-memory version arrives with the GPU backend issue.)
// CPU reference: engine::ops::matmul_bias.

struct Params {
    m: u32,
    k: u32,
    n: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    let row = gid.y;
    if row >= p.m || col >= p.n {
        return;
    }
    var acc = b[col];
    for (var kk = 0u; kk < p.k; kk++) {
        acc += x[row * p.k + kk] * w[kk * p.n + col];
    }
    y[row * p.n + col] = acc;
}
