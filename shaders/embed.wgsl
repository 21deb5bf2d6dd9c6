// embed.wgsl: token embedding gather plus learned positional embedding.
//
// Shapes (row-major f32 unless noted):
//   ids[T] (u32)   token ids, each < vocab (checked on the CPU before dispatch)
//   wte[V×d]       token embedding table
//   wpe[P×d]       position table, T ≤ P
//   x[T×d]         out: x[t, c] = wte[ids[t], c] + wpe[t, c]
// One invocation per output element. Workgroup 64; dispatch (ceil(T·d/64), 1, 1).
// CPU reference: engine::ops::embed.

struct Params {
    t: u32,
    d: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> wte: array<f32>;
@group(0) @binding(3) var<storage, read> wpe: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= p.t * p.d {
        return;
    }
    let row = i / p.d;
    let col = i % p.d;
    x[i] = wte[ids[row] * p.d + col] + wpe[row * p.d + col];
}
