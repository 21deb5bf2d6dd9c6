// matmul_weights_f32_scalar.wgsl: how matmul_skinny.wgsl reads w when it is
// f32, one scalar at a time. Prepended by gpu::kernels after
// matmul_common.wgsl; matmul_weights_16.wgsl is the 16-bit twin.

@group(0) @binding(2) var<storage, read> w: array<f32>;

// Element i of w.
fn w_at(i: u32) -> f32 {
    return w[i];
}

// Elements 4·i4 .. 4·i4 + 3 of w.
fn w_vec4(i4: u32) -> vec4<f32> {
    return vec4<f32>(w[4u * i4], w[4u * i4 + 1u], w[4u * i4 + 2u], w[4u * i4 + 3u]);
}
