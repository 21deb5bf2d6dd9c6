// matmul_weights_16.wgsl: w kept 16-bit on the GPU, two values per u32
// (element i in the low half of word i/2 when i is even, the high half when
// odd), widened to f32 as it is read by half.wgsl's half_to_f32: bfloat16
// with FLAG_W_BF16, IEEE half otherwise. The buffer is padded to 16 bytes.
// Prepended by gpu::kernels after matmul_common.wgsl and half.wgsl to
// matmul_bias.wgsl and matmul_skinny.wgsl for their 16-bit pipelines; the
// f32 twins are matmul_weights_f32*.wgsl.

@group(0) @binding(2) var<storage, read> w: array<u32>;

// Element i of w.
fn w_at(i: u32) -> f32 {
    return half_in(w[i >> 1u], i, has(FLAG_W_BF16));
}

// Elements 4·i4 .. 4·i4 + 3 of w.
fn w_vec4(i4: u32) -> vec4<f32> {
    let a = w[2u * i4];
    let b = w[2u * i4 + 1u];
    let bf16 = has(FLAG_W_BF16);
    return vec4<f32>(half_to_f32(a & 0xffffu, bf16), half_to_f32(a >> 16u, bf16), half_to_f32(b & 0xffffu, bf16),
        half_to_f32(b >> 16u, bf16));
}
