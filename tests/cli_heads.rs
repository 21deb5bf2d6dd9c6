//! `attnscope lens`, `ablate` and `patch`: their JSON agrees with itself
//! (the sweep's grid with single ablations, the direct contributions with
//! the logit) and bad heads or prompts are clear errors, not panics.
#![cfg(not(target_arch = "wasm32"))]

use std::process::Command;

use serde_json::Value;

/// Runs the CLI on its default model (www/models/default); (success, JSON or null, stderr).
fn attnscope(args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_attnscope")).args(args).output().expect("run attnscope");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), json, String::from_utf8_lossy(&out.stderr).into())
}

const TEXT: &str = "Emma went to the market. Emma";

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a number: {v}"))
}

#[test]
fn the_sweep_grid_equals_single_ablations_and_the_clean_top_token() {
    let (ok, grid, err) = attnscope(&["ablate", "--text", TEXT, "--sweep", "--mode", "mean"]);
    assert!(ok, "{err}");
    let sweep = &grid["sweep"];
    assert_eq!(sweep["delta_logit"].as_array().unwrap().len(), 2);
    assert_eq!(sweep["delta_logit"][1].as_array().unwrap().len(), 4);
    let (ok, one, err) = attnscope(&["ablate", "--text", TEXT, "--heads", "1.2", "--mode", "mean"]);
    assert!(ok, "{err}");
    assert_eq!(one["token"], grid["token"]);
    assert_eq!(one["token"]["id"], one["clean"]["top"][0]["id"], "the default token is the clean top-1");
    assert!((f(&one["delta_logit"]) - f(&sweep["delta_logit"][1][2])).abs() < 1e-5);
    assert!((f(&one["intervened"]["prob"]) - f(&sweep["prob"][1][2])).abs() < 1e-5);
    assert_eq!(one["first_layer"], 1);
    assert!(one["flops"].as_u64().unwrap() < one["full_flops"].as_u64().unwrap());
}

#[test]
fn patching_from_the_same_prompt_changes_nothing_and_from_another_changes_the_logit() {
    let (ok, same, err) = attnscope(&["patch", "--text", TEXT, "--source", TEXT, "--heads", "0.1,1.3"]);
    assert!(ok, "{err}");
    assert_eq!(f(&same["delta_logit"]), 0.0);
    // Same length in tokens (8), a different verb.
    let other = "Emma ran to the market. Emma";
    let (ok, patched, err) = attnscope(&["patch", "--text", TEXT, "--source", other, "--sweep", "--token", "348"]);
    assert!(ok, "{err}");
    assert_eq!(patched["token"]["id"], 348);
    let deltas: Vec<f64> = patched["sweep"]["delta_logit"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(f))
        .collect();
    assert!(deltas.iter().any(|d| d.abs() > 1e-3), "some head carries the verb: {deltas:?}");
}

#[test]
fn the_lens_has_a_point_per_sublayer_and_the_contributions_sum_to_the_logit() {
    let (ok, lens, err) = attnscope(&["lens", "--text", TEXT, "--k", "3", "--position", "2", "--token", "280"]);
    assert!(ok, "{err}");
    let points = lens["lens"].as_array().unwrap();
    assert_eq!(points.len(), 5);
    assert_eq!(points[4]["name"], "L1 + MLP");
    assert_eq!(points[0]["top"][2].as_array().unwrap().len(), 3);
    let direct = &lens["direct"];
    let mut total = f(&direct["token_embedding"]) + f(&direct["position_embedding"]) + f(&direct["norm_shift"]);
    for key in ["attn_bias", "mlp"] {
        total += direct[key].as_array().unwrap().iter().map(f).sum::<f64>();
    }
    total += direct["heads"].as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap().iter().map(f)).sum::<f64>();
    assert!((total - f(&direct["logit"])).abs() < 1e-4, "{total} vs {}", direct["logit"]);
    assert_eq!(direct["position"], 2);
}

#[test]
fn bad_heads_prompts_and_tokens_are_clear_errors() {
    let cases: [(&[&str], &str); 6] = [
        (&["ablate", "--text", TEXT, "--heads", "2.0"], "there is no head 2.0"),
        (&["ablate", "--text", TEXT, "--heads", "1"], "write LAYER.HEAD"),
        (&["ablate", "--text", TEXT, "--heads", "0.0", "--token", "999999"], "outside the vocabulary"),
        (&["patch", "--text", TEXT, "--source", "Emma", "--heads", "0.0"], "same length"),
        (&["lens", "--text", TEXT, "--position", "99"], "outside the text"),
        (&["lens", "--text", TEXT, "--k", "0"], "--k must be"),
    ];
    for (args, want) in cases {
        let (ok, _, err) = attnscope(args);
        assert!(!ok, "{args:?} fails");
        assert!(err.contains(want) && !err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn eval_prints_the_head_finder_scores_of_every_head() {
    let heldout = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/heldout.txt");
    let (ok, json, err) =
        attnscope(&["eval", "--text-file", heldout, "--sequences", "2", "--json", "--finder-token", "12"]);
    assert!(ok, "{err}");
    let finder = &json["finder"];
    assert_eq!(finder["tokens"], 128, "the default model's context");
    let heads = finder["heads"].as_array().unwrap();
    assert_eq!(heads.len(), 8);
    for key in ["previous_token", "first_token", "self", "induction", "entropy", "to_token"] {
        assert!(heads.iter().all(|h| (0.0..=1.0 + 1e-9).contains(&f(&h[key]))), "{key} in [0, 1]");
    }
    let best = heads.iter().map(|h| f(&h["previous_token"])).fold(0.0, f64::max);
    assert!(best >= 0.5, "a previous-token head stands out: {best}");
}

#[test]
fn ablate_patch_and_lens_run_given_ids_on_a_llama_checkpoint_without_a_tokenizer() {
    let llama = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/llama-tiny");
    let ids = "3,14,15,92,65,35,89,79";
    let (ok, one, err) = attnscope(&["ablate", "--model", llama, "--ids", ids, "--heads", "1.3", "--mode", "mean"]);
    assert!(ok, "{err}");
    assert!(err.contains("no tokenizer.json"), "{err}");
    let (ok, grid, err) = attnscope(&["ablate", "--model", llama, "--ids", ids, "--sweep", "--mode", "mean"]);
    assert!(ok, "{err}");
    assert!((f(&one["delta_logit"]) - f(&grid["sweep"]["delta_logit"][1][3])).abs() < 1e-5);
    let (ok, same, err) = attnscope(&["patch", "--model", llama, "--ids", ids, "--source-ids", ids, "--heads", "0.1"]);
    assert!(ok, "{err}");
    assert_eq!(f(&same["delta_logit"]), 0.0);
    let (ok, lens, err) = attnscope(&["lens", "--model", llama, "--ids", ids]);
    assert!(ok, "{err}");
    assert!(lens["direct"].get("position_embedding").is_none(), "RoPE: no position table");
    assert_eq!(lens["direct"]["norm_shift"], 0.0, "RMSNorm has no shift");
}
