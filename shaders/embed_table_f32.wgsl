// embed_table_f32.wgsl: how embed.wgsl reads its token-table chunk when it
// is f32. Prepended by gpu::kernels; embed_table_16.wgsl is the 16-bit twin.

@group(0) @binding(2) var<storage, read> wte: array<f32>;

// Element i of the chunk.
fn wte_at(i: u32) -> f32 {
    return wte[i];
}
