// replace_head.wgsl: replaces one head's output in a layer's concatenated
// head outputs before the output projection reads them, for ablation and
// patching (the forward then re-runs from there).
//
// Buffers (row-major f32):
//   src  rows 0..t, head h's output at src[src_offset + i·q_dim + col0 + c]
//        (c < d_head): the clean run's outputs (mean) or a second prompt's
//        (patch); unread for zeros
//   dst  [t × q_dim] head_out: columns col0..col0 + d_head of rows 0..t are written
// Modes: 0 zeros; 1 the mean over rows 0..t of src's columns, the same at
// every row (mean ablation); 2 src's rows as they are (patching).
// One invocation per column c < d_head, looping over the rows (the mean sums
// rows in order in f32, as the CPU twin does).
// Workgroup 64; dispatch (ceil(d_head / 64), 1, 1).
// CPU twin: engine::intervene's replacement (Replacement::{Zero, Mean, Patch}).

struct Params {
    t: u32,
    q_dim: u32,
    d_head: u32,
    col0: u32,
    mode: u32,
    src_offset: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if c >= p.d_head {
        return;
    }
    let col = p.col0 + c;
    var mean = 0.0;
    if p.mode == 1u {
        for (var i = 0u; i < p.t; i++) {
            mean += src[p.src_offset + i * p.q_dim + col];
        }
        mean /= f32(p.t);
    }
    for (var i = 0u; i < p.t; i++) {
        var v = mean;
        if p.mode == 2u {
            v = src[p.src_offset + i * p.q_dim + col];
        }
        dst[i * p.q_dim + col] = v;
    }
}
