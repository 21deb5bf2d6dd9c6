// A random Llama-family checkpoint written in Node (no Python): config.json
// and model.safetensors (f32, Hugging Face's tensor names), seeded, so the
// browser tests can put a model of any shape (grouped KV heads, 30 × 9) in
// place of the default through page.route, and the CLI can trace the same
// files. Its vocabulary matches the default tokenizer's (4096), so it is
// paired with www/models/default/tokenizer.json.
import { mkdirSync, writeFileSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './harness.mjs';

export const TOKENIZER = path.join(ROOT, 'www/models/default/tokenizer.json');

/** SmolLM2-135M's grid: 30 layers × 9 heads on 3 KV heads (narrower: d 144, head_dim 16, so SwiftShader keeps up). */
export const SMOLLM2_GRID = { layers: 30, heads: 9, kvHeads: 3, headDim: 16, hidden: 144, inner: 192 };
/** A small grouped-head Llama: 2 layers × 4 heads on 2 KV heads, with Llama 3's RoPE scaling. */
export const TINY_GQA = { layers: 2, heads: 4, kvHeads: 2, headDim: 16, hidden: 64, inner: 96, llama3: true };

/** mulberry32: a small seeded generator, uniform in [0, 1). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** { config: Buffer, model: Buffer } of a random Llama of `shape`. */
export function randomLlama(shape, { seed = 1, vocab = 4096, positions = 256, theta = 10000 } = {}) {
  const { layers, heads, kvHeads, headDim, hidden: d, inner } = shape;
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu', attention_bias: false,
    mlp_bias: false, hidden_size: d, intermediate_size: inner, num_hidden_layers: layers,
    num_attention_heads: heads, num_key_value_heads: kvHeads, head_dim: headDim,
    max_position_embeddings: positions, rms_norm_eps: 1e-5, tie_word_embeddings: true, vocab_size: vocab,
    rope_theta: theta,
    rope_scaling: shape.llama3
      ? { rope_type: 'llama3', factor: 4, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 }
      : null,
  };
  const tensors = [['model.embed_tokens.weight', [vocab, d], 1.0]];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}.`;
    tensors.push(
      [p + 'input_layernorm.weight', [d], 'norm'],
      [p + 'self_attn.q_proj.weight', [heads * headDim, d], 1 / Math.sqrt(d)],
      [p + 'self_attn.k_proj.weight', [kvHeads * headDim, d], 1 / Math.sqrt(d)],
      [p + 'self_attn.v_proj.weight', [kvHeads * headDim, d], 1 / Math.sqrt(d)],
      [p + 'self_attn.o_proj.weight', [d, heads * headDim], 0.5 / Math.sqrt(heads * headDim)],
      [p + 'post_attention_layernorm.weight', [d], 'norm'],
      [p + 'mlp.gate_proj.weight', [inner, d], 1 / Math.sqrt(d)],
      [p + 'mlp.up_proj.weight', [inner, d], 1 / Math.sqrt(d)],
      [p + 'mlp.down_proj.weight', [d, inner], 0.5 / Math.sqrt(inner)],
    );
  }
  tensors.push(['model.norm.weight', [d], 'norm']);
  const next = rng(seed);
  const header = {};
  const chunks = [];
  let offset = 0;
  for (const [name, shp, scale] of tensors) {
    const n = shp.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = scale === 'norm' ? 0.8 + 0.4 * next() : (2 * next() - 1) * scale * Math.sqrt(3);
    header[name] = { dtype: 'F32', shape: shp, data_offsets: [offset, offset + 4 * n] };
    chunks.push(Buffer.from(data.buffer));
    offset += 4 * n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return {
    config: Buffer.from(JSON.stringify(config, null, 1)),
    model: Buffer.concat([len, Buffer.from(json), ...chunks]),
  };
}

/** Writes the model and the default tokenizer into `dir` (for `attnscope trace --model dir`). */
export function writeModelDir(dir, files) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'config.json'), files.config);
  writeFileSync(path.join(dir, 'model.safetensors'), files.model);
  copyFileSync(TOKENIZER, path.join(dir, 'tokenizer.json'));
  return dir;
}

const BYTES = { F32: 4, F16: 2, BF16: 2, F64: 8 };

/**
 * A safetensors file's byte-shuffled copy, as `attnscope shuffle` writes it
 * (src/model/shuffle.rs): each tensor's bytes grouped by their place in the
 * element. The page fetches the default model this way.
 */
export function shuffled(model) {
  const start = 8 + Number(model.readBigUInt64LE(0));
  const header = JSON.parse(model.subarray(8, start).toString('utf8'));
  const out = Buffer.from(model);
  for (const [name, info] of Object.entries(header)) {
    const size = name === '__metadata__' ? 1 : BYTES[info.dtype] ?? 1;
    if (size === 1) continue;
    const [a, b] = info.data_offsets.map((o) => start + o);
    const n = (b - a) / size;
    for (let i = 0; i < n; i++) for (let k = 0; k < size; k++) out[a + k * n + i] = model[a + i * size + k];
  }
  return out;
}

/** Serves `files` (and the default tokenizer) in place of models/default/ for this page. */
export async function routeModel(page, files) {
  const weights = shuffled(files.model);
  await page.route('**/models/default/**', (route) => {
    const name = new URL(route.request().url()).pathname.split('/').pop();
    if (name === 'config.json') return route.fulfill({ body: files.config, contentType: 'application/json' });
    if (name === 'model.safetensors.shuffled') return route.fulfill({ body: weights, contentType: 'application/octet-stream' });
    return route.continue();
  });
}
