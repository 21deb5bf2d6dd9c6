// row_norms.wgsl: the Euclidean norm of each row of one residual-stream
// tensor, for the block view's map of ‖x‖ per token and per point of the
// stream (after the embeddings, after each attention and each MLP).
//
// Buffers (row-major f32):
//   x    [·×d]: rows 0..rows are used
//   out  out[out_row · out_stride + i] = sqrt(Σ_c x[i·d + c]²) for i < rows
// One invocation per row, summing in f32 in column order (the CPU reference,
// engine::residual::row_norms, sums in the same order).
// Workgroup 64; dispatch (ceil(rows / 64), 1, 1).

struct Params {
    rows: u32,
    d: u32,
    out_row: u32,
    out_stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= p.rows {
        return;
    }
    var s = 0.0;
    for (var c = 0u; c < p.d; c++) {
        let v = x[i * p.d + c];
        s += v * v;
    }
    out[p.out_row * p.out_stride + i] = sqrt(s);
}
