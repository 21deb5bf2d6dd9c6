// rope.wgsl: RoPE in Hugging Face's rotate-half convention, in place on the
// fused projection's Q and K columns (the Llama family), for rows row0 .. row0+R.
//
// Shapes (row-major f32):
//   qkv[·×stride]     in/out: the first n_heads·d_head columns of each row are the
//                     query heads then the KV heads' keys (n_heads = n_head + n_kv_head);
//                     in head slice h, element c < d_head/2 pairs with c + d_head/2
//   table[·×d_head]   cos then sin of position · inv_freq[c] for each pair c: row r
//                     holds position r (computed on the CPU by engine::ops::rope_table,
//                     so both sides rotate by the same numbers)
//   pre[·×n_heads·d_head]  out when write_pre: the slices before the rotation (the
//                     trace's q_pre_rope and k_pre_rope)
// One invocation per (row, head, pair). Workgroup 64; dispatch (ceil(R·n_heads·d_head/2 / 64), 1, 1).
// CPU reference: engine::ops::rope.

struct Params {
    rows: u32,
    row0: u32,
    stride: u32,
    n_heads: u32,
    d_head: u32,
    write_pre: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> pre: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let half = p.d_head / 2u;
    let per_row = p.n_heads * half;
    if gid.x >= p.rows * per_row {
        return;
    }
    let row = p.row0 + gid.x / per_row;
    let h = (gid.x % per_row) / half;
    let c = gid.x % half;
    let at = row * p.stride + h * p.d_head + c;
    let a = qkv[at];
    let b = qkv[at + half];
    if p.write_pre != 0u {
        let out = row * p.n_heads * p.d_head + h * p.d_head + c;
        pre[out] = a;
        pre[out + half] = b;
    }
    let cos = table[row * p.d_head + c];
    let sin = table[row * p.d_head + half + c];
    qkv[at] = a * cos - b * sin;
    qkv[at + half] = b * cos + a * sin;
}
