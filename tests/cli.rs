//! The `attnscope` command line: its JSON schema and its error messages.
#![cfg(not(target_arch = "wasm32"))]

use std::process::Command;

/// Runs the CLI as given (its default model is www/models/default).
fn attnscope_as_is(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_attnscope")).args(args).output().expect("run attnscope");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Runs the CLI on the fixed placeholder model (2 layers, 4 heads, vocab 1024,
/// context 256) unless `--model` is given, so these checks do not move when
/// the default model is retrained.
fn attnscope(args: &[&str]) -> (bool, String, String) {
    let placeholder = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/placeholder");
    let mut full: Vec<&str> = args.to_vec();
    if !args.contains(&"--model") && matches!(args.first(), Some(&"trace") | Some(&"generate") | Some(&"eval")) {
        full.splice(1..1, ["--model", placeholder]);
    }
    attnscope_as_is(&full)
}

#[test]
fn the_default_model_is_the_shipped_one() {
    let (ok, stdout, stderr) = attnscope_as_is(&["trace", "--text", "Emma"]);
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["model"]["name"], "default");
}

#[test]
fn trace_prints_the_documented_schema() {
    let (ok, stdout, stderr) = attnscope(&["trace", "--text", "Hello there", "--mask", "window:2"]);
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["model"]["n_head"], 4);
    let t = json["tokens"].as_array().unwrap().len();
    assert!(t >= 2);
    for key in ["id", "text", "start", "end"] {
        assert!(json["tokens"][0].get(key).is_some(), "token key {key}");
    }
    let head = &json["layers"][0]["heads"][0];
    for key in ["scores_raw", "scores_scaled", "scores_masked", "weights"] {
        assert_eq!(head[key].as_array().unwrap().len(), t, "{key} has T rows");
    }
    // Masked entries are null; window:2 masks (t-1, 0).
    assert!(head["scores_masked"][t - 1][0].is_null());
    assert_eq!(head["weights"][t - 1][0], 0.0);
    let layers = json["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for key in ["ln_1", "attn_out", "resid_mid", "ln_2", "mlp_hidden", "mlp_out", "resid_post"] {
        assert_eq!(layers[1][key].as_array().unwrap().len(), t, "{key} has T rows");
    }
    // Only the last position's logits unless --logits all.
    assert_eq!(json["logits"].as_array().unwrap().len(), 1);
    assert_eq!(json["logits"][0].as_array().unwrap().len(), 1024);
    let (_, all, _) = attnscope(&["trace", "--text", "Hello there", "--mask", "window:2", "--logits", "all"]);
    let all: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all["logits"].as_array().unwrap().len(), t);
    assert_eq!(all["logits"][t - 1], json["logits"][0]);
}

#[test]
fn generate_is_reproducible_with_a_seed_and_greedy_ignores_it() {
    let run = |seed: &str, temperature: &str| {
        let (ok, out, err) = attnscope(&[
            "generate",
            "--prompt",
            "Good morrow",
            "--steps",
            "8",
            "--seed",
            seed,
            "--temperature",
            temperature,
        ]);
        assert!(ok, "{err}");
        out
    };
    // The untrained placeholder is very peaked; a high temperature makes seeds matter.
    assert_eq!(run("3", "4.0"), run("3", "4.0"));
    assert_ne!(run("3", "4.0"), run("4", "4.0"));
    assert_eq!(run("3", "0"), run("4", "0"));
    assert!(run("3", "1.0").starts_with("Good morrow"));
}

/// `trace --backend gpu` prints the same schema and the same numbers (within the
/// kernels' tolerance) as the CPU reference. Needs a GPU adapter (lavapipe in CI).
#[test]
fn gpu_trace_has_the_schema_and_numbers_of_the_cpu_trace() {
    let text = "Good morrow, cousin";
    let (ok, cpu, stderr) = attnscope(&["trace", "--text", text, "--mask", "window:3"]);
    assert!(ok, "{stderr}");
    let (ok, gpu, stderr) = attnscope(&["trace", "--text", text, "--mask", "window:3", "--backend", "gpu"]);
    assert!(ok, "{stderr}");
    let (cpu, gpu): (serde_json::Value, serde_json::Value) =
        (serde_json::from_str(&cpu).unwrap(), serde_json::from_str(&gpu).unwrap());
    assert_eq!(gpu["backend"], "gpu");
    assert_eq!(gpu["tokens"], cpu["tokens"]);
    assert_eq!(gpu["mask"], cpu["mask"]);
    fn worst(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> f64 {
        match (a, b) {
            (serde_json::Value::Array(x), serde_json::Value::Array(y)) => {
                assert_eq!(x.len(), y.len(), "{path}: length");
                x.iter().zip(y).map(|(p, q)| worst(p, q, path)).fold(0.0, f64::max)
            }
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>(), "{path}: keys");
                x.iter().map(|(k, v)| worst(v, &y[k], &format!("{path}.{k}"))).fold(0.0, f64::max)
            }
            (serde_json::Value::Number(x), serde_json::Value::Number(y)) => {
                (x.as_f64().unwrap() - y.as_f64().unwrap()).abs()
            }
            (x, y) => {
                assert_eq!(x, y, "{path}");
                0.0
            }
        }
    }
    for key in ["embeddings", "layers", "ln_f", "logits"] {
        let err = worst(&gpu[key], &cpu[key], key);
        assert!(err <= 1e-4, "{key}: GPU and CPU differ by {err}");
    }
}

#[test]
fn ids_trace_matches_text_trace() {
    let (_, by_text, _) = attnscope(&["trace", "--text", "Hello there"]);
    let by_text: serde_json::Value = serde_json::from_str(&by_text).unwrap();
    let ids: Vec<String> = by_text["tokens"].as_array().unwrap().iter().map(|t| t["id"].to_string()).collect();
    let (ok, by_ids, stderr) = attnscope(&["trace", "--ids", &ids.join(",")]);
    assert!(ok, "{stderr}");
    let by_ids: serde_json::Value = serde_json::from_str(&by_ids).unwrap();
    assert_eq!(by_ids["layers"][0]["heads"][3]["weights"], by_text["layers"][0]["heads"][3]["weights"]);
}

#[test]
fn bad_inputs_give_clear_messages() {
    let (ok, _, stderr) = attnscope(&["trace", "--text", "x", "--mask", "diagonal"]);
    assert!(!ok && stderr.contains("unknown mask `diagonal`"), "{stderr}");
    let (ok, _, stderr) = attnscope(&["trace", "--ids", "1,2,99999"]);
    assert!(!ok && stderr.contains("token id 99999 is outside the vocabulary"), "{stderr}");
    let (ok, _, stderr) = attnscope(&["trace", "--model", "/nonexistent", "--text", "x"]);
    assert!(!ok && stderr.contains("/nonexistent/config.json"), "{stderr}");
    let long = "word ".repeat(400);
    let (ok, _, stderr) = attnscope(&["trace", "--text", &long]);
    assert!(!ok && stderr.contains("context holds at most 256"), "{stderr}");
}

/// The placeholder model in a fresh directory under the test's target dir,
/// with its context cut to `n_positions` (wpe's first rows) and with or
/// without its tokenizer.json.
fn placeholder_copy(name: &str, n_positions: usize, with_tokenizer: bool) -> std::path::PathBuf {
    use safetensors::tensor::TensorView;
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/placeholder");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = std::fs::read_to_string(from.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        config.replace("\"n_positions\": 256", &format!("\"n_positions\": {n_positions}")),
    )
    .unwrap();
    let bytes = std::fs::read(from.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(name, v)| (name, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    for (name, _, shape, data) in &mut tensors {
        if name.ends_with("wpe.weight") {
            data.truncate(n_positions * shape[1] * 4);
            shape[0] = n_positions;
        }
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| (name.clone(), TensorView::new(*dtype, shape.clone(), data).unwrap()))
        .collect();
    std::fs::write(dir.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
    if with_tokenizer {
        std::fs::copy(from.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    }
    dir
}

/// `--steps 18446744073709551615` panicked and `--steps 1000000000` aborted on
/// a 48 GB allocation; both now stop at the context, saying so.
#[test]
fn generate_with_any_step_count_stops_at_the_context() {
    for steps in ["18446744073709551615", "1000000000"] {
        let (ok, stdout, stderr) =
            attnscope(&["generate", "--prompt", "Once", "--steps", steps, "--temperature", "0", "--json"]);
        assert!(ok, "{steps}: {stderr}");
        assert!(stderr.contains("stopped early: the context holds 256 tokens"), "{stderr}");
        assert!(stdout.lines().count() < 256, "at most the context's worth of steps");
    }
}

/// `eval` on a context below the induction test's 4 tokens failed (n_positions
/// 1) or printed NaN (2, 3): now it says why.
#[test]
fn eval_on_a_context_too_short_says_why() {
    let heldout = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/heldout.txt");
    for n in [1usize, 2, 3] {
        let dir = placeholder_copy(&format!("short-context-{n}"), n, true);
        let (ok, stdout, stderr) = attnscope(&["eval", "--model", dir.to_str().unwrap(), "--text-file", heldout]);
        assert!(!ok, "n_positions {n}: {stdout}");
        assert!(!stdout.contains("NaN"), "{stdout}");
        assert!(stderr.contains(&format!("needs a context of at least 4 tokens; this model's holds {n}")), "{stderr}");
    }
    let dir = placeholder_copy("short-context-4", 4, true);
    let (ok, stdout, stderr) =
        attnscope(&["eval", "--model", dir.to_str().unwrap(), "--text-file", heldout, "--sequences", "2", "--json"]);
    assert!(ok && !stdout.contains("NaN") && !stdout.contains("null"), "{stdout}{stderr}");
}

/// A checkpoint saved by `save_pretrained` has no tokenizer.json: given ids,
/// `trace` runs anyway, shows the tokens by id and says so on stderr.
#[test]
fn trace_ids_without_a_tokenizer_runs_and_says_so() {
    let dir = placeholder_copy("no-tokenizer", 256, false);
    let (ok, stdout, stderr) = attnscope(&["trace", "--model", dir.to_str().unwrap(), "--ids", "5,17,300"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("no tokenizer.json") && stderr.contains("by id"), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let texts: Vec<&str> = json["tokens"].as_array().unwrap().iter().map(|t| t["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["<5>", "<17>", "<300>"]);
    // The same numbers as with the tokenizer.
    let (_, with, _) = attnscope(&["trace", "--ids", "5,17,300"]);
    let with: serde_json::Value = serde_json::from_str(&with).unwrap();
    assert_eq!(json["logits"], with["logits"]);
    // Text still needs the tokenizer, and says so.
    let (ok, _, stderr) = attnscope(&["trace", "--model", dir.to_str().unwrap(), "--text", "Hi"]);
    assert!(!ok && stderr.contains("tokenizer.json"), "{stderr}");
}

/// `bench --repeat 2^64-1` reserved its timings before running (a capacity
/// overflow panic), like `--steps`; counts and sizes from flags are bounded.
#[test]
fn bench_and_eval_counts_from_flags_are_bounded() {
    for args in [
        &["bench", "--repeat", "18446744073709551615", "--t", "4"][..],
        &["bench", "--repeat", "0", "--t", "4"],
        &["bench", "--backend", "gpu", "--matmul", "4000000000", "--t", "4"],
        &["eval", "--text-file", "/dev/null", "--sequences", "18446744073709551615"],
    ] {
        let (ok, _, stderr) = attnscope(args);
        assert!(!ok && stderr.contains("must be") && !stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
