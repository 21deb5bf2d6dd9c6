// embed_table_16.wgsl: how embed.wgsl reads its token-table chunk when it is
// 16-bit, two values per u32 (`half`: 1 IEEE half, 2 bfloat16), widened by
// half.wgsl. Prepended by gpu::kernels after half.wgsl for the Embed16 pipeline.

@group(0) @binding(2) var<storage, read> wte: array<u32>;

// Element i of the chunk.
fn wte_at(i: u32) -> f32 {
    return half_in(wte[i >> 1u], i, p.half == 2u);
}
