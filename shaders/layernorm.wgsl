// layernorm.wgsl: y = (x − mean) / sqrt(var + eps) · gain + bias, per row.
//
// Shapes (row-major f32):
//   x[R×d] in, gain[d], bias[d], y[R×d] out. Variance is the biased one (÷d), as GPT-2.
// One invocation per row (two passes over the row: mean, then variance).
// Workgroup 64; dispatch (ceil(R/64), 1, 1).
// CPU reference: engine::ops::layernorm.

struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gain: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x;
    if row >= p.rows {
        return;
    }
    let base = row * p.d;
    var sum = 0.0;
    for (var c = 0u; c < p.d; c++) {
        sum += x[base + c];
    }
    let mean = sum / f32(p.d);
    var sq = 0.0;
    for (var c = 0u; c < p.d; c++) {
        let dev = x[base + c] - mean;
        sq += dev * dev;
    }
    let inv = 1.0 / sqrt(sq / f32(p.d) + p.eps);
    for (var c = 0u; c < p.d; c++) {
        y[base + c] = (x[base + c] - mean) * inv * gain[c] + bias[c];
    }
}
