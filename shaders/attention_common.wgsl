// attention_common.wgsl: what attention_rows.wgsl and flash_attention.wgsl
// share, prepended to each by gpu::kernels (WGSL has no include): the uniform
// block (gpu::kernels::AttentionParams), the fused qkv input at binding 1, and
// the mask rule. Each kernel declares its outputs from binding 2 on.
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
    _pad0: u32,
    _pad1: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;

// Whether query row i may attend to key j.
fn allowed(i: u32, j: u32) -> bool {
    switch p.mask_mode {
        case 1u: { return true; }
        case 2u: { return j <= i && i - j < p.window; }
        default: { return j <= i; }
    }
}
