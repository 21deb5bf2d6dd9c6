// embed.wgsl: token embedding gather plus learned positional embedding (the
// token rows alone when `positions` is 0: RoPE models).
//
// Shapes (row-major f32 unless noted):
//   ids[·] (u32)   token ids, each < vocab (checked on the CPU before dispatch)
//   wte[Vc×d]      one chunk of the token table: rows v0 .. v0+Vc of the full
//                  [V×d] table (a table larger than one storage binding is
//                  uploaded in chunks; each chunk's dispatch writes the rows whose
//                  id falls in it, so all chunks together write every row)
//   wpe[P×d]       position table, row0 + M ≤ P
//   x[·×d]         out: x[t, c] = wte[ids[t] − v0, c] + wpe[t, c] for t in row0 .. row0+M
// The chunk is read through wte_at: f32 (embed_table_f32.wgsl) or 16-bit
// (embed_table_16.wgsl, `half` 1 f16 or 2 bf16), appended after this file's
// uniform block by gpu::kernels.
// One invocation per output element. Workgroup 64; dispatch (ceil(M·d/64), 1, 1).
// CPU reference: engine::ops::embed.

struct Params {
    m: u32,
    d: u32,
    row0: u32,
    v0: u32,
    vn: u32,
    positions: u32,
    half: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read> wpe: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i >= p.m * p.d {
        return;
    }
    let row = p.row0 + i / p.d;
    let col = i % p.d;
    let id = ids[row];
    if id < p.v0 || id - p.v0 >= p.vn {
        return;
    }
    var v = wte_at((id - p.v0) * p.d + col);
    if p.positions != 0u {
        v += wpe[row * p.d + col];
    }
    x[row * p.d + col] = v;
}
