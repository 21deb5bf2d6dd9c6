//! Our CPU forward of the Llama family against an independent
//! implementation: Hugging Face `transformers` (`LlamaForCausalLM`,
//! `Qwen2ForCausalLM`, eager attention, f32) on the random tiny checkpoints
//! tools/make_golden_llama.py wrote into tests/fixtures/: grouped and full
//! multi-head, tied and untied heads, f32 and bf16 (sharded), llama3 RoPE
//! scaling, both config.json forms, T = 1 to 130.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/golden.rs"]
mod golden;

use attnscope::engine::extend::extend_cpu;
use attnscope::engine::kv_cache::KvCache;
use attnscope::engine::{forward_cpu, Mask, Trace};
use attnscope::model::{Architecture, Model, Token};
use golden::{fixture, Case, Reference};

fn load(dir: &str) -> (Model, Reference) {
    let (model, _) = Model::load_dir_tokenizer_optional(&fixture(dir)).unwrap();
    (model, golden::reference(dir))
}

fn tokens(ids: &[u32]) -> Vec<Token> {
    ids.iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect()
}

fn run(model: &Model, ids: &[u32]) -> Trace {
    forward_cpu(&model.config, &model.weights, tokens(ids), Mask::Causal).unwrap()
}

/// Every logit and every attention weight within `tol` of the reference;
/// returns the largest differences (logits, weights).
fn check(model: &Model, case: &Case, tol: f32) -> (f32, f32) {
    let trace = run(model, &case.ids);
    let t = case.ids.len();
    let mut worst = (0.0f32, 0.0f32);
    for (i, row) in case.logits.iter().enumerate() {
        for (v, &want) in row.iter().enumerate() {
            worst.0 = worst.0.max((trace.logits.at(i, v) - want).abs());
        }
    }
    assert!(worst.0 <= tol, "T={t}: max logit error {}", worst.0);
    for (l, layer) in case.attentions.iter().enumerate() {
        assert_eq!(layer.len(), model.config.n_head);
        for (h, head) in layer.iter().enumerate() {
            let ours = &trace.layers[l].heads()[h].weights();
            for (i, row) in head.iter().enumerate() {
                assert_eq!(row.len(), i + 1);
                for j in 0..t {
                    let (got, want) = (ours.at(i, j), row.get(j).copied().unwrap_or(0.0));
                    let err = (got - want).abs();
                    worst.1 = worst.1.max(err);
                    assert!(err <= tol, "T={t} layer {l} head {h} [{i}][{j}]: {got} vs {want}");
                }
            }
        }
    }
    worst
}

#[test]
fn grouped_untied_f32_llama_with_llama3_rope_scaling_matches_transformers_within_1e_4() {
    let (model, reference) = load("llama-tiny");
    let c = &model.config;
    assert_eq!((c.architecture, c.n_head, c.n_kv_head, c.tie_word_embeddings), (Architecture::Llama, 4, 2, false));
    assert!(c.rope_scaling.is_some(), "the fixture exercises llama3 scaling");
    assert!(model.weights.lm_head.is_some());
    let lengths: Vec<usize> = reference.cases.iter().map(|c| c.ids.len()).collect();
    assert_eq!(lengths, [1, 7, 130], "T = 1 and T > 100 are both covered");
    for case in &reference.cases {
        let (logits, weights) = check(&model, case, 1e-4);
        println!("T={}: max error logits {logits:.2e}, attention weights {weights:.2e}", case.ids.len());
    }
}

#[test]
fn full_multi_head_tied_bf16_sharded_llama_matches_transformers_within_1e_4() {
    assert!(fixture("llama-tiny-mha").join("model.safetensors.index.json").exists());
    assert!(!fixture("llama-tiny-mha").join("model.safetensors").exists(), "loaded from the shards");
    let (model, reference) = load("llama-tiny-mha");
    let c = &model.config;
    assert_eq!((c.n_head, c.n_kv_head, c.tie_word_embeddings), (4, 4, true));
    assert!(model.weights.lm_head.is_none());
    // bf16 weights, kept bf16 (fused and transposed as they are).
    let w = &model.weights.blocks[0].attn_qkv_w;
    assert_eq!(w.format(), Some(attnscope::model::Half::Bf16), "weights came from bf16");
    assert!(w.to_f32().iter().all(|x| x.to_bits() & 0xffff == 0));
    for case in &reference.cases {
        check(&model, case, 1e-4);
    }
}

#[test]
fn qwen2_with_qkv_biases_matches_transformers_within_1e_4() {
    let (model, reference) = load("qwen2-tiny");
    let c = &model.config;
    assert_eq!((c.architecture, c.n_head, c.n_kv_head, c.qkv_bias), (Architecture::Qwen2, 6, 2, true));
    assert!(model.weights.blocks[0].attn_qkv_b.data.iter().any(|&b| b != 0.0));
    for case in &reference.cases {
        check(&model, case, 1e-4);
    }
}

#[test]
fn the_references_are_not_trivial() {
    // Peaked attention and spread logits, so agreement above means something.
    let (_, reference) = load("llama-tiny");
    let case = reference.cases.iter().find(|c| c.ids.len() == 130).unwrap();
    let max_weight = case.attentions[1].iter().flat_map(|h| h[129].iter().copied()).fold(0.0f32, f32::max);
    assert!(max_weight > 0.2, "some head attends sharply at T=130 (max weight {max_weight})");
    let row = &case.logits[129];
    let spread = row.iter().copied().fold(f32::MIN, f32::max) - row.iter().copied().fold(f32::MAX, f32::min);
    assert!(spread > 3.0, "logits spread over {spread}");
}

#[test]
fn rope_heads_carry_their_kv_head_and_pre_rope_q_and_k() {
    let (model, reference) = load("llama-tiny");
    let trace = run(&model, &reference.cases[1].ids);
    let heads = trace.layers[0].heads();
    let kv: Vec<Option<usize>> = heads.iter().map(|h| h.kv_head).collect();
    assert_eq!(kv, [Some(0), Some(0), Some(1), Some(1)], "query head h reads KV head h / 2");
    assert_eq!(heads[0].k, heads[1].k, "a group shares its keys");
    assert_eq!(heads[2].v, heads[3].v, "and its values");
    let (q_pre, k_pre) = (heads[0].q_pre_rope.as_ref().unwrap(), heads[0].k_pre_rope.as_ref().unwrap());
    assert_eq!(q_pre.row(0), heads[0].q.row(0), "position 0 is not rotated");
    assert_ne!(q_pre.row(3), heads[0].q.row(3), "later positions are");
    // A rotation keeps each pair's length.
    let norm = |r: &[f32]| r.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm(k_pre.row(5)) - norm(heads[0].k.row(5))).abs() < 1e-4);
    // The JSON names the architecture and the new per-head fields.
    let json = serde_json::to_value(&trace).unwrap();
    let head = &json["layers"][0]["heads"][3];
    assert_eq!(head["kv_head"], 1);
    assert!(head["q_pre_rope"].is_array() && head["k_pre_rope"].is_array());
    let config = serde_json::to_value(&model.config).unwrap();
    assert_eq!((config["architecture"].as_str(), config["n_kv_head"].as_u64()), (Some("llama"), Some(2)));
    assert_eq!((config["head_dim"].as_u64(), config["rope_theta"].as_f64()), (Some(16), Some(10_000.0)));
}

#[test]
fn prefix_reuse_and_the_kv_cache_equal_full_runs_on_the_fixtures() {
    for dir in ["llama-tiny", "qwen2-tiny"] {
        let (model, reference) = load(dir);
        let ids = &reference.cases.last().unwrap().ids;
        let (c, w) = (&model.config, &model.weights);
        let full = run(&model, ids);
        let p = ids.len() / 2;
        let prefix = run(&model, &ids[..p]);
        let extended = extend_cpu(c, w, &prefix, tokens(ids), Mask::Causal).unwrap();
        let diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff(&extended.logits.data, &full.logits.data) <= 1e-4, "{dir}: extend");
        for (la, lb) in extended.layers.iter().zip(&full.layers) {
            for (ha, hb) in la.heads().iter().zip(lb.heads()) {
                assert!(
                    diff(&ha.weights().to_matrix().data, &hb.weights().to_matrix().data) <= 1e-5,
                    "{dir}: extend weights"
                );
                let (qa, qb) = (ha.q_pre_rope.as_ref().unwrap(), hb.q_pre_rope.as_ref().unwrap());
                assert!(diff(&qa.data, &qb.data) <= 1e-5, "{dir}: extend q_pre_rope");
            }
        }
        let mut cache = KvCache::from_trace(c, &prefix);
        for (i, &id) in ids.iter().enumerate().skip(p) {
            let step = cache.step(c, w, id, Mask::Causal).unwrap();
            assert!(diff(&step.logits, full.logits.row(i)) <= 1e-4, "{dir}: cached step {i}");
        }
        assert_eq!(cache.bytes(), (ids.len() * 2 * c.kv_dim() * c.n_layer * 4) as u64, "one entry per KV head");
    }
}
