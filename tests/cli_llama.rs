//! The command line on Llama-family models: a Hugging Face directory (ids
//! only, no tokenizer.json), a GGUF file (text, generation, eval, bench), the
//! positional numbers (`positions`, a GPT-2 fixture too), the
//! GPU backend, and the messages for what does not load.
#![cfg(not(target_arch = "wasm32"))]

use std::process::Command;

fn attnscope(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_attnscope")).args(args).output().expect("run attnscope");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

const LLAMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/llama-tiny");
/// A tiny quantized Llama in GGUF (Q8_0 table, Q4_0/Q4_1/Q8_0 projections, a 4-token BPE).
const GGUF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/gguf/tiny-llama-quantized");

#[test]
fn trace_of_a_llama_directory_names_the_architecture_and_the_rope_fields() {
    for backend in ["cpu", "gpu"] {
        let (ok, stdout, stderr) = attnscope(&["trace", "--model", LLAMA_DIR, "--ids", "1,5,9", "--backend", backend]);
        assert!(ok, "{backend}: {stderr}");
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let model = &json["model"];
        assert_eq!(model["architecture"], "llama");
        assert_eq!((model["n_kv_head"].as_u64(), model["head_dim"].as_u64()), (Some(2), Some(16)));
        assert_eq!(model["rope_theta"], 10000.0);
        let head = &json["layers"][1]["heads"][3];
        assert_eq!(head["kv_head"], 1, "{backend}");
        assert_eq!(head["q_pre_rope"].as_array().unwrap().len(), 3);
        assert_eq!(head["k_pre_rope"][0].as_array().unwrap().len(), 16);
        assert_eq!(json["layers"][0]["mlp_hidden"][0].as_array().unwrap().len(), 96);
    }
}

#[test]
fn a_gguf_file_traces_text_generates_evaluates_and_benchmarks() {
    let (ok, stdout, stderr) = attnscope(&["trace", "--model", GGUF, "--text", "abba"]);
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let texts: Vec<&str> = json["tokens"].as_array().unwrap().iter().map(|t| t["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["ab", "b", "a"], "the GGUF's own BPE merges a+b");
    let (ok, stdout, stderr) =
        attnscope(&["generate", "--model", GGUF, "--prompt", "ab", "--steps", "3", "--temperature", "0"]);
    assert!(ok && stdout.starts_with("ab"), "{stdout} {stderr}");
    let text = std::env::temp_dir().join(format!("attnscope-cli-llama-{}.txt", std::process::id()));
    std::fs::write(&text, "abab ba ab".repeat(4)).unwrap();
    let (ok, stdout, stderr) =
        attnscope(&["eval", "--model", GGUF, "--text-file", text.to_str().unwrap(), "--sequences", "2", "--json"]);
    std::fs::remove_file(&text).unwrap();
    assert!(ok, "{stderr}");
    let eval: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(eval["loss"].as_f64().unwrap().is_finite());
    let (ok, stdout, stderr) = attnscope(&["bench", "--model", GGUF, "--t", "4", "--repeat", "1", "--generate", "4"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("llama, 1 layers, 1 heads over 1 KV heads of 32"), "{stdout}");
    assert!(stdout.contains("tokens/s"), "{stdout}");
}

#[test]
fn what_does_not_load_is_named() {
    let dir = std::env::temp_dir().join(format!("attnscope-cli-mistral-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config =
        std::fs::read_to_string(format!("{LLAMA_DIR}/config.json")).unwrap().replace("\"llama\"", "\"mistral\"");
    std::fs::write(dir.join("config.json"), config).unwrap();
    let (ok, _, stderr) = attnscope(&["trace", "--model", dir.to_str().unwrap(), "--ids", "1"]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!ok);
    assert!(stderr.contains("model_type `mistral` is not supported (supported: gpt2, llama, qwen2)"), "{stderr}");
    let not_gguf = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let (ok, _, stderr) = attnscope(&["trace", "--model", not_gguf, "--ids", "1"]);
    assert!(!ok && stderr.contains("not a GGUF file"), "{stderr}");
}

#[test]
fn positions_prints_rope_numbers_for_a_llama_and_learned_similarity_for_gpt2() {
    let (ok, stdout, stderr) = attnscope(&["positions", "--model", LLAMA_DIR]);
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["kind"], "rope");
    let inv_freq = json["inv_freq"].as_array().unwrap();
    assert_eq!(inv_freq.len(), 8, "head_dim 16: 8 pairs");
    // Llama 3 scaling (factor 4, 32 original positions) divides the slowest pair's frequency by 4.
    let slowest = inv_freq[7].as_f64().unwrap();
    assert!((slowest - 10000f64.powf(-14.0 / 16.0) / 4.0).abs() < 1e-9, "{slowest}");
    assert_eq!(json["decay"][0], 1.0);
    assert_eq!(json["distances"].as_array().unwrap().last().unwrap(), 255, "the context bounds the distances");

    let gpt2 = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gpt2-tiny");
    let (ok, stdout, stderr) = attnscope(&["positions", "--model", gpt2, "--positions", "10"]);
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["kind"], "learned");
    let similarity = json["similarity"].as_array().unwrap();
    assert_eq!(similarity.len(), 10);
    assert!((similarity[3][3].as_f64().unwrap() - 1.0).abs() < 1e-5);
}
