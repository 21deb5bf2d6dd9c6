//! The shipped default model (www/models/default, trained by tools/train/):
//! its held-out loss is the model card's, and its heads show trained patterns.
//! Every number here comes from the engine's own traces.
#![cfg(not(target_arch = "wasm32"))]

use std::path::PathBuf;

use attnscope::engine::analysis::{attention_scores_by_head, induction_test, mean_loss};
use attnscope::model::Model;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model() -> Model {
    Model::load_dir(&root().join("www/models/default")).expect("the default model loads")
}

fn heldout_ids(model: &Model) -> Vec<u32> {
    let text = std::fs::read_to_string(root().join("tests/fixtures/heldout.txt")).unwrap();
    model.tokenizer.encode(&text).unwrap().iter().map(|t| t.id).collect()
}

/// The number in the card's "**X nats/token**".
fn card_loss() -> f64 {
    let card = std::fs::read_to_string(root().join("www/models/default/MODEL_CARD.md")).unwrap();
    let at = card.find(" nats/token**").expect("the card states the held-out loss");
    let start = card[..at].rfind("**").expect("bold number") + 2;
    card[start..at].parse().expect("a number")
}

#[test]
fn held_out_loss_equals_the_model_card() {
    let model = model();
    let (loss, predicted) = mean_loss(&model, &heldout_ids(&model)).unwrap();
    assert!(predicted > 4000, "enough held-out text ({predicted} predictions)");
    let card = card_loss();
    assert!((loss - card).abs() <= 0.05, "engine loss {loss:.4} vs model card {card:.4}");
    // Far better than a uniform guess over the vocabulary (ln 4096 = 8.3).
    assert!(loss < 5.0, "the model is trained: loss {loss}");
}

#[test]
fn some_head_attends_to_the_previous_token() {
    let model = model();
    let heads = attention_scores_by_head(&model, &heldout_ids(&model)).unwrap();
    let best = heads.iter().map(|h| h.previous_token).fold(0.0, f64::max);
    assert!(best >= 0.5, "best previous-token score {best:.3}");
}

#[test]
fn a_later_layer_has_an_induction_head_and_the_repeat_is_predicted() {
    let model = model();
    let report = induction_test(&model, 50, 10, 0).unwrap();
    let best = report.heads.iter().filter(|h| h.layer >= 1).map(|h| h.induction).fold(0.0, f64::max);
    assert!(best >= 0.3, "best induction score in layers ≥ 1: {best:.3}");
    let gain = report.loss_first_copy - report.loss_second_copy;
    assert!(gain >= 2.0, "loss {:.2} → {:.2} on the repeat", report.loss_first_copy, report.loss_second_copy);
}

/// The page fetches the default model's shuffled copy (it gzips smaller):
/// it must be exactly the shipped model, shuffled.
#[test]
fn the_shuffled_copy_is_the_shipped_model() {
    use attnscope::model::shuffle;
    let dir = root().join("www/models/default");
    let model = std::fs::read(dir.join("model.safetensors")).unwrap();
    let shipped = std::fs::read(dir.join(shuffle::FILE_NAME)).unwrap();
    assert!(
        shuffle::shuffle(&model).unwrap() == shipped,
        "www/models/default/{} is stale: cargo run --release -- shuffle www/models/default/model.safetensors",
        shuffle::FILE_NAME
    );
    assert!(shuffle::unshuffle(&shipped).unwrap() == model);
}

/// The page fetches the default tokenizer's compact copy (its vocabulary
/// rebuilt from the merges): it must be exactly the shipped tokenizer,
/// compacted, and expand to it.
#[test]
fn the_compact_tokenizer_is_the_shipped_one() {
    use attnscope::model::compact_vocab;
    let dir = root().join("www/models/default");
    let tokenizer = std::fs::read(dir.join("tokenizer.json")).unwrap();
    let shipped = std::fs::read(dir.join(compact_vocab::FILE_NAME)).unwrap();
    assert!(
        compact_vocab::compact(&tokenizer).unwrap() == shipped,
        "www/models/default/{} is stale: cargo run --release -- compact-tokenizer www/models/default/tokenizer.json",
        compact_vocab::FILE_NAME
    );
    let expanded: serde_json::Value = serde_json::from_slice(&compact_vocab::expand(&shipped).unwrap()).unwrap();
    assert_eq!(expanded, serde_json::from_slice::<serde_json::Value>(&tokenizer).unwrap());
    // And the tokenizer it makes is the shipped one's, id for id.
    let text = "The cat sat on the mat. ünïcödé, 12345 and <|endoftext|>";
    let (a, b) = (
        attnscope::model::TextTokenizer::from_bytes(&tokenizer).unwrap(),
        attnscope::model::TextTokenizer::from_bytes(&compact_vocab::expand(&shipped).unwrap()).unwrap(),
    );
    assert_eq!(a.encode(text).unwrap(), b.encode(text).unwrap());
}
