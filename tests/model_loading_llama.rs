//! Loading Llama-family checkpoints (Hugging Face names, one file or
//! shards): the message for each way the files can be wrong, on edits of the
//! tests/fixtures/llama-tiny and qwen2-tiny checkpoints.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;
use std::path::PathBuf;

use attnscope::model::{Model, ModelConfig, Weights};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

type Tensors = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

fn fixture(dir: &str, file: &str) -> Vec<u8> {
    std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir).join(file)).unwrap()
}

fn tensors(bytes: &[u8]) -> Tensors {
    let st = SafeTensors::deserialize(bytes).unwrap();
    st.tensors().into_iter().map(|(name, v)| (name, (v.dtype(), v.shape().to_vec(), v.data().to_vec()))).collect()
}

fn serialize(map: &Tensors) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = map
        .iter()
        .map(|(name, (dtype, shape, data))| (name.clone(), TensorView::new(*dtype, shape.clone(), data).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn llama() -> (ModelConfig, Tensors) {
    let config = ModelConfig::from_json(&fixture("llama-tiny", "config.json")).unwrap();
    (config, tensors(&fixture("llama-tiny", "model.safetensors")))
}

fn err(map: &Tensors, config: &ModelConfig) -> String {
    match Weights::from_safetensors(&serialize(map), config) {
        Ok(_) => panic!("expected the weights to be refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_missing_projection_is_named_with_its_hugging_face_name() {
    let (config, mut map) = llama();
    map.remove("model.layers.1.self_attn.k_proj.weight");
    assert_eq!(err(&map, &config), "model.safetensors has no tensor `model.layers.1.self_attn.k_proj.weight`");
    let (config, mut map) = llama();
    map.remove("lm_head.weight");
    assert_eq!(err(&map, &config), "model.safetensors has no tensor `lm_head.weight`", "the untied head is required");
}

#[test]
fn a_projection_of_the_wrong_shape_names_both_shapes() {
    let (config, mut map) = llama();
    // K projection of a model with 4 KV heads where the config says 2.
    let k = map.get_mut("model.layers.0.self_attn.k_proj.weight").unwrap();
    k.1 = vec![64, 64];
    k.2 = vec![0; 64 * 64 * 4];
    assert_eq!(
        err(&map, &config),
        "tensor `model.layers.0.self_attn.k_proj.weight` has shape [64, 64], but config.json implies [32, 64]"
    );
}

#[test]
fn an_unsupported_dtype_is_named() {
    let (config, mut map) = llama();
    let norm = map.get_mut("model.norm.weight").unwrap();
    norm.0 = Dtype::I32;
    assert_eq!(err(&map, &config), "tensor `model.norm.weight` has dtype I32; only F32, F16 and BF16 are supported");
}

#[test]
fn a_non_finite_weight_is_named() {
    let (config, mut map) = llama();
    let norm = map.get_mut("model.layers.0.input_layernorm.weight").unwrap();
    norm.2[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(err(&map, &config).contains("`model.layers.0.input_layernorm.weight` holds NaN at index 2"));
}

#[test]
fn qwen2_needs_its_qkv_biases() {
    let config = ModelConfig::from_json(&fixture("qwen2-tiny", "config.json")).unwrap();
    let mut map = tensors(&fixture("qwen2-tiny", "model.safetensors"));
    map.remove("model.layers.0.self_attn.v_proj.bias");
    assert_eq!(err(&map, &config), "model.safetensors has no tensor `model.layers.0.self_attn.v_proj.bias`");
}

#[test]
fn tensors_split_over_two_files_load_like_one() {
    let (config, map) = llama();
    let (first, second): (Tensors, Tensors) = map.clone().into_iter().partition(|(name, _)| name.contains("layers.0"));
    let (a, b) = (serialize(&first), serialize(&second));
    let split = Weights::from_shards(&[&a, &b], &config).unwrap();
    let whole = Weights::from_safetensors(&serialize(&map), &config).unwrap();
    assert_eq!(split.blocks[0].attn_qkv_w, whole.blocks[0].attn_qkv_w);
    assert_eq!(split.head(), whole.head());
    // Without its second half the checkpoint is incomplete, and says which tensor is missing.
    let err = Weights::from_shards(&[&a], &config).unwrap_err().to_string();
    assert!(err.contains("has no tensor `model.layers.1."), "{err}");
}

#[test]
fn a_directory_without_weights_names_the_file_it_looked_for() {
    let dir = std::env::temp_dir().join(format!("attnscope-llama-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), fixture("llama-tiny", "config.json")).unwrap();
    let err = Model::load_dir_tokenizer_optional(&dir).err().unwrap().to_string();
    assert!(err.starts_with("cannot read ") && err.contains("model.safetensors"), "{err}");
    std::fs::write(dir.join("model.safetensors.index.json"), br#"{"weight_map": {"a": "../x.safetensors"}}"#).unwrap();
    let err = Model::load_dir_tokenizer_optional(&dir).err().unwrap().to_string();
    assert!(err.contains("plain .safetensors file names"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
