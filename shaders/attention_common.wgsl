// attention_common.wgsl: what attention_rows.wgsl and flash_attention.wgsl
// share, prepended to each by gpu::kernels (WGSL has no include): the uniform
// block (gpu::kernels::AttentionParams), the fused qkv input at binding 1, the
// column arithmetic of grouped KV heads, and the mask rule. Each kernel
// declares its outputs from binding 2 on.
// qkv rows are n_head·d_head (Q) + n_kv_head·d_head (K) + n_kv_head·d_head (V)
// wide; query head h reads KV head h / (n_head / n_kv_head) (n_kv_head =
// n_head is full multi-head attention, GPT-2's 3d-wide rows).
// Mask modes: 0 causal (j ≤ i), 1 bidirectional, 2 sliding window
// (i − w < j ≤ i); the CPU twin is engine::Mask::allows.

struct Params {
    m: u32,
    t: u32,
    n_head: u32,
    d_head: u32,
    row0: u32,
    cap: u32, // row stride of attention_rows.wgsl's T×T outputs; unused by flash_attention.wgsl
    mask_mode: u32,
    window: u32,
    scale: f32,
    neg_inf_bits: u32,
    n_kv_head: u32,
    // attention_rows.wgsl: rows below `kept` were computed by an earlier run
    // (never with a mask that lets a row see later keys): only their columns
    // from `kept` on are written. 0 in flash_attention.wgsl.
    kept: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;

// Width of a qkv row.
fn qkv_stride() -> u32 {
    return (p.n_head + 2u * p.n_kv_head) * p.d_head;
}

// Column of query head h's Q in a qkv row.
fn q_col(h: u32) -> u32 {
    return h * p.d_head;
}

// Column of the K that query head h reads (its KV head's); V is n_kv_head·d_head further.
fn k_col(h: u32) -> u32 {
    return p.n_head * p.d_head + h / (p.n_head / p.n_kv_head) * p.d_head;
}

fn v_col(h: u32) -> u32 {
    return k_col(h) + p.n_kv_head * p.d_head;
}

// Whether query row i may attend to key j.
fn allowed(i: u32, j: u32) -> bool {
    switch p.mask_mode {
        case 1u: { return true; }
        case 2u: { return j <= i && i - j < p.window; }
        default: { return j <= i; }
    }
}
