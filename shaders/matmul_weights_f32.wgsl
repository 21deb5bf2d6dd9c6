// matmul_weights_f32.wgsl: how matmul_bias.wgsl reads w when it is f32,
// bound as vec4s (its buffer padded to 16 bytes). Prepended by gpu::kernels
// after matmul_common.wgsl; matmul_weights_16.wgsl is the 16-bit twin.

@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;

// Element i of w.
fn w_at(i: u32) -> f32 {
    return w[i >> 2u][i & 3u];
}

// Elements 4·i4 .. 4·i4 + 3 of w.
fn w_vec4(i4: u32) -> vec4<f32> {
    return w[i4];
}
