//! Loading GPT-2-format files: what loads, and the message for each way a file can be wrong.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::BTreeMap;

use attnscope::engine::{forward_cpu, Mask};
use attnscope::model::{Model, ModelConfig, Weights};
use common::{placeholder, placeholder_dir};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

struct Files {
    config: Vec<u8>,
    weights: Vec<u8>,
    tokenizer: Vec<u8>,
}

fn files() -> Files {
    let dir = placeholder_dir();
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    Files { config: read("config.json"), weights: read("model.safetensors"), tokenizer: read("tokenizer.json") }
}

/// The placeholder's tensors as (dtype, shape, bytes), to be edited and re-serialised.
fn tensors(bytes: &[u8]) -> BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    st.tensors().into_iter().map(|(name, v)| (name, (v.dtype(), v.shape().to_vec(), v.data().to_vec()))).collect()
}

fn serialize(map: &BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = map
        .iter()
        .map(|(name, (dtype, shape, data))| (name.clone(), TensorView::new(*dtype, shape.clone(), data).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn load(files: &Files) -> Result<Model, String> {
    Model::from_bytes("test", &files.config, &files.weights, &files.tokenizer).map_err(|e| e.to_string())
}

fn load_err(files: &Files) -> String {
    match load(files) {
        Ok(_) => panic!("expected the files to be refused"),
        Err(e) => e,
    }
}

#[test]
fn shipped_placeholder_loads() {
    let model = placeholder();
    assert_eq!(model.config.n_layer, model.weights.blocks.len());
    assert_eq!(model.tokenizer.vocab_size(), model.config.vocab_size);
}

#[test]
fn truncated_safetensors_is_named() {
    let mut f = files();
    f.weights.truncate(f.weights.len() / 2);
    assert!(load_err(&f).contains("model.safetensors is truncated or corrupt"));
    f.weights = b"not a safetensors file".to_vec();
    assert!(load_err(&f).contains("model.safetensors is truncated or corrupt"));
}

#[test]
fn missing_tensor_is_named() {
    let mut f = files();
    let mut map = tensors(&f.weights);
    map.remove("h.1.mlp.c_fc.weight");
    f.weights = serialize(&map);
    assert!(load_err(&f).contains("no tensor `h.1.mlp.c_fc.weight`"), "{}", load_err(&f));
}

#[test]
fn wrong_shape_is_named_with_both_shapes() {
    let mut f = files();
    let mut map = tensors(&f.weights);
    let (_, shape, data) = map.get_mut("h.0.attn.c_attn.weight").unwrap();
    *shape = vec![192, 64]; // transposed: the Linear layout instead of Conv1D
    let _ = data;
    f.weights = serialize(&map);
    let err = load_err(&f);
    assert!(err.contains("`h.0.attn.c_attn.weight` has shape [192, 64]") && err.contains("[64, 192]"), "{err}");
}

#[test]
fn config_that_disagrees_with_tensors_is_refused() {
    let mut f = files();
    f.config = String::from_utf8(f.config).unwrap().replace("\"n_layer\": 2", "\"n_layer\": 3").into_bytes();
    assert!(load_err(&f).contains("no tensor `h.2.ln_1.weight`"));
    let mut f = files();
    f.config = String::from_utf8(f.config).unwrap().replace("\"n_embd\": 64", "\"n_embd\": 32").into_bytes();
    assert!(load_err(&f).contains("has shape [64], but config.json implies [32]"), "{}", load_err(&f));
}

#[test]
fn unsupported_dtype_is_named() {
    let mut f = files();
    let mut map = tensors(&f.weights);
    map.insert("ln_f.bias".into(), (Dtype::I32, vec![64], vec![0; 256]));
    f.weights = serialize(&map);
    assert!(load_err(&f).contains("`ln_f.bias` has dtype I32"), "{}", load_err(&f));
}

#[test]
fn transformer_prefix_and_f16_weights_load_and_agree_within_f16_precision() {
    let f = files();
    let config = ModelConfig::from_json(&f.config).unwrap();
    let reference = Weights::from_safetensors(&f.weights, &config).unwrap();
    let map: BTreeMap<_, _> = tensors(&f.weights)
        .into_iter()
        .map(|(name, (_, shape, data))| {
            let halves: Vec<u8> = data
                .chunks_exact(4)
                .flat_map(|c| half::f16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes())
                .collect();
            (format!("transformer.{name}"), (Dtype::F16, shape, halves))
        })
        .collect();
    let halved = Weights::from_safetensors(&serialize(&map), &config).unwrap();
    assert_eq!(halved.wte.format(), Some(attnscope::model::Half::F16), "kept 16-bit");
    for (a, b) in halved.wte.to_f32().iter().zip(reference.wte.to_f32().iter()) {
        assert!((a - b).abs() <= b.abs() * 1e-3 + 1e-7, "f16 {a} vs f32 {b}");
    }
    // The whole layer agrees too, within what f16 weights allow.
    let model16 = Model {
        name: "f16".into(),
        config: config.clone(),
        weights: halved,
        tokenizer: attnscope::model::TextTokenizer::from_bytes(&f.tokenizer).unwrap(),
    };
    let model32 = placeholder();
    let tokens = model32.tokenizer.encode("Good morning, sir.").unwrap();
    let a = forward_cpu(&model16.config, &model16.weights, tokens.clone(), Mask::Causal).unwrap();
    let b = forward_cpu(&model32.config, &model32.weights, tokens, Mask::Causal).unwrap();
    for (x, y) in a.layers[1].heads()[0].weights().view().values().zip(b.layers[1].heads()[0].weights().view().values())
    {
        assert!((x - y).abs() < 5e-3, "f16 weights {x} vs f32 {y}");
    }
    for (x, y) in a.logits.data.iter().zip(&b.logits.data) {
        assert!((x - y).abs() < 2e-2 * (1.0 + y.abs()), "f16 logit {x} vs f32 {y}");
    }
}

/// NaN or ∞ in any weight was accepted: `trace` printed thousands of `null`s.
#[test]
fn a_weight_that_is_not_finite_is_refused_and_its_tensor_named() {
    let original = files();
    for (name, dtype, bad) in [
        ("h.1.mlp.c_fc.weight", Dtype::F32, f32::NAN.to_le_bytes().to_vec()),
        ("wte.weight", Dtype::F32, f32::INFINITY.to_le_bytes().to_vec()),
        ("ln_f.bias", Dtype::F16, half::f16::NEG_INFINITY.to_le_bytes().to_vec()),
        ("h.0.attn.c_attn.bias", Dtype::BF16, half::bf16::NAN.to_le_bytes().to_vec()),
    ] {
        let mut f = Files {
            config: original.config.clone(),
            weights: original.weights.clone(),
            tokenizer: original.tokenizer.clone(),
        };
        let mut map = tensors(&f.weights);
        let (old_dtype, shape, data) = map.remove(name).unwrap();
        assert_eq!(old_dtype, Dtype::F32);
        let mut data: Vec<u8> = match dtype {
            Dtype::F32 => data,
            Dtype::F16 => data
                .chunks_exact(4)
                .flat_map(|c| half::f16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes())
                .collect(),
            _ => data
                .chunks_exact(4)
                .flat_map(|c| half::bf16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes())
                .collect(),
        };
        let at = bad.len() * 3;
        data[at..at + bad.len()].copy_from_slice(&bad);
        map.insert(name.into(), (dtype, shape, data));
        f.weights = serialize(&map);
        let err = load_err(&f);
        assert!(err.contains(&format!("`{name}`")) && err.contains("at index 3") && err.contains("finite"), "{err}");
    }
}

#[test]
fn bad_tokenizer_is_named() {
    let mut f = files();
    f.tokenizer = b"{\"model\": 42}".to_vec();
    assert!(load_err(&f).contains("tokenizer.json could not be loaded"));
}

#[test]
fn missing_file_names_its_path() {
    let err = Model::load_dir(std::path::Path::new("/nonexistent/model")).err().unwrap().to_string();
    assert!(err.contains("/nonexistent/model/config.json"), "{err}");
}

#[test]
fn cpu_trace_has_the_shapes_of_the_config_and_valid_softmax_rows() {
    let model = placeholder();
    for t in [1, 2, 17, model.config.n_positions] {
        let ids: Vec<u32> = (0..t as u32).map(|i| (i * 37) % 1024).collect();
        let tokens: Vec<_> =
            ids.iter().map(|&id| attnscope::model::Token { id, text: String::new(), start: 0, end: 0 }).collect();
        for mask in [Mask::Causal, Mask::Bidirectional, Mask::Window(4)] {
            let trace = forward_cpu(&model.config, &model.weights, tokens.clone(), mask).unwrap();
            assert_eq!(trace.layers.len(), model.config.n_layer);
            assert_eq!((trace.logits.rows, trace.logits.cols), (t, model.config.vocab_size));
            assert_eq!(trace.layers[1].mlp_hidden.as_ref().unwrap().cols, model.config.n_inner);
            let heads = trace.layers[1].heads();
            assert_eq!(heads.len(), model.config.n_head);
            for head in heads {
                assert_eq!((head.q.rows, head.q.cols), (t, model.config.d_head()));
                let weights = head.weights();
                assert_eq!((weights.rows(), weights.cols()), (t, t));
                // Computed from Q and K when read: once per head, not per cell.
                let masked = head.scores_masked();
                for i in 0..t {
                    let row = weights.row(i);
                    assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "row {i} sums to 1");
                    for (j, &w) in row.iter().enumerate() {
                        if !mask.allows(i, j) {
                            assert_eq!(w, 0.0, "{mask:?} [{i}][{j}] is exactly 0");
                            assert_eq!(masked.at(i, j), f32::NEG_INFINITY);
                        }
                    }
                }
            }
        }
    }
    let too_long = vec![attnscope::model::Token { id: 1, text: String::new(), start: 0, end: 0 }; 257];
    let err = forward_cpu(&model.config, &model.weights, too_long, Mask::Causal).unwrap_err().to_string();
    assert!(err.contains("257 tokens long") && err.contains("at most 256"), "{err}");
}

mod fuzz {
    //! The loader on damaged files: any truncation or byte corruption gives
    //! an error or a model, never a panic.
    use super::*;
    use proptest::prelude::*;

    fn original() -> &'static Files {
        static F: std::sync::OnceLock<Files> = std::sync::OnceLock::new();
        F.get_or_init(files)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn corrupted_weights_never_panic(cut in 0usize..800_000, flips in prop::collection::vec((0usize..800_000, any::<u8>()), 0..8)) {
            let f = original();
            let mut weights = f.weights.clone();
            // Most flips land in the header's first kilobytes, where parsing happens.
            for (at, byte) in flips {
                let at = if at % 2 == 0 { at % 2048 } else { at };
                if at < weights.len() {
                    weights[at] = byte;
                }
            }
            weights.truncate(cut.min(weights.len()));
            let _ = Model::from_bytes("fuzz", &f.config, &weights, &f.tokenizer);
        }

        #[test]
        fn corrupted_config_never_panics(flips in prop::collection::vec((0usize..200, any::<u8>()), 1..6)) {
            let f = original();
            let mut config = f.config.clone();
            for (at, byte) in flips {
                if at < config.len() {
                    config[at] = byte;
                }
            }
            let _ = Model::from_bytes("fuzz", &config, &f.weights, &f.tokenizer);
        }

        #[test]
        fn any_length_up_to_the_context_gives_shapes_of_the_config(t in 1usize..=256, seed in any::<u32>()) {
            let model = placeholder();
            let ids: Vec<u32> = (0..t as u32).map(|i| (i.wrapping_mul(2654435761) ^ seed) % 1024).collect();
            let trace = model.trace_ids(&ids, Mask::Causal).unwrap();
            prop_assert_eq!(trace.embeddings.rows, t);
            prop_assert_eq!(trace.logits.rows, t);
            for layer in &trace.layers {
                prop_assert_eq!(layer.resid_post.as_ref().unwrap().rows, t);
                for head in layer.heads() {
                    prop_assert_eq!((head.weights().rows(), head.weights().cols()), (t, t));
                    prop_assert_eq!((head.output.rows, head.output.cols), (t, model.config.d_head()));
                }
            }
        }
    }
}
