// layernorm.wgsl: y = (x − mean) / sqrt(var + eps) · gain + bias, per row;
// with `rms` set, RMSNorm (the Llama family): y = x / sqrt(mean(x²) + eps) · gain
// (+ bias, zeros for those models).
//
// Shapes (row-major f32):
//   x[·×d] in, ln[2d] (gain then bias), y[·×d] out, rows row0 .. row0+R.
//   Variance is the biased one (÷d), as GPT-2.
// Used for ln_f when the trace keeps it; inside a block, layernorm is fused into
// matmul_bias.wgsl's prologue instead.
// One invocation per row (two passes over the row: mean, then variance).
// Workgroup 64; dispatch (ceil(R/64), 1, 1).
// CPU reference: engine::ops::layernorm, engine::ops::rmsnorm.

struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    row0: u32,
    rms: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> ln: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.x >= p.rows {
        return;
    }
    let row = p.row0 + gid.x;
    let base = row * p.d;
    var sum = 0.0;
    for (var c = 0u; c < p.d; c++) {
        sum += x[base + c];
    }
    let mean = select(sum / f32(p.d), 0.0, p.rms != 0u);
    var sq = 0.0;
    for (var c = 0u; c < p.d; c++) {
        let dev = x[base + c] - mean;
        sq += dev * dev;
    }
    let inv = 1.0 / sqrt(sq / f32(p.d) + p.eps);
    for (var c = 0u; c < p.d; c++) {
        y[base + c] = (x[base + c] - mean) * inv * ln[c] + ln[p.d + c];
    }
}
