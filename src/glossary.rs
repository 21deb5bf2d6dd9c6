//! Every symbol and term the page uses, one sentence each: the glossary panel
//! lists them and each panel links the ones it shows (`ui::panels::glossary`).
//! One letter per meaning: A is always the attention weights, W always a
//! learned weight matrix.

/// One glossary entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// A stable key for links (`gl-{key}` is its element id).
    pub key: &'static str,
    /// The term as the page writes it.
    pub term: &'static str,
    /// One sentence.
    pub meaning: &'static str,
}

const fn e(key: &'static str, term: &'static str, meaning: &'static str) -> Entry {
    Entry { key, term, meaning }
}

/// The entries, in the order the computation meets them.
pub const ENTRIES: &[Entry] = &[
    e("token", "token", "A piece of text the model reads as one unit: a word, part of a word, a space or a byte; each has a number, its id."),
    e("space", "· (in a token)", "A space inside a token, drawn as a dot so it can be seen; ↵ is a newline and → a tab."),
    e("t", "T", "The number of tokens in the text (the context length); attention compares every pair of them, so its cost grows with T²."),
    e("context", "context", "The most tokens the model can read at once; its positions end there, so longer text is cut."),
    e("embedding", "embedding", "The learned vector of d numbers the model looks up for each token id, plus a learned vector for its position."),
    e("d", "d (d_model)", "The width of every token's vector in the residual stream."),
    e("residual", "residual stream x", "Each token's running vector: every attention and MLP block reads it and adds its result back to it."),
    e("norm", "‖x‖", "The length (Euclidean norm) of a vector: the square root of the sum of its squared numbers."),
    e("ln", "ln₁(x), ln₂, ln_f (norms)", "Rescale a token's vector before attention (ln₁), the MLP (ln₂) and the output (ln_f): GPT-2's LayerNorm to mean 0 and spread 1, then a learned scale and shift; the Llama family's RMSNorm by its root mean square, then a learned scale."),
    e("rmsnorm", "RMSNorm", "The Llama family's norm: divides a token's vector by its root mean square (no mean subtracted, no shift), then applies a learned scale."),
    e("swiglu", "SwiGLU (silu(gate)·up)", "The Llama family's MLP: two projections of the token, one passed through silu and multiplied by the other, then projected back to d."),
    e("gqa", "grouped KV heads", "Several query heads share one key/value head (grouped-query attention), so the KV cache holds n_kv_head heads instead of n_head."),
    e("rope", "RoPE (rotary positions)", "Rotates each pair of a query's and key's numbers by an angle proportional to the token's position, so q·k depends on how far apart the two tokens are."),
    e("rope-freq", "rotation frequency θᵢ", "How many radians per position pair i of a head's dimensions turns under RoPE: θᵢ = base^(−2i/d_head), the first pairs fast, the last slow."),
    e("position-vector", "position vector", "In GPT-2, the learned vector added to a token's embedding for its position; nearby positions learn similar vectors."),
    e("cosine", "cosine similarity", "The dot product of two vectors divided by both their lengths: 1 when they point the same way, 0 when at right angles."),
    e("layer", "layer (L0, L1…)", "One attention block followed by one MLP block; the model stacks them."),
    e("head", "head (H0, H1…)", "One of several attentions a layer runs side by side, each with its own W_Q, W_K and W_V."),
    e("w", "W_Q, W_K, W_V, W_O", "Learned weight matrices: they turn a token's vector into its query, key and value, and the heads' outputs back into the residual stream."),
    e("q", "Q (queries)", "For each token, a vector saying what it is looking for: Q = ln₁(x)·W_Q."),
    e("k", "K (keys)", "For each token, a vector saying what it offers to be found by: K = ln₁(x)·W_K."),
    e("v", "V (values)", "For each token, the vector it passes on to the tokens that attend to it: V = ln₁(x)·W_V."),
    e("d-head", "d_head", "The length of one head's query, key and value vectors (d divided by the number of heads)."),
    e("dot", "· (between symbols)", "A product: of two vectors, the sum of their numbers multiplied pairwise (the dot product); of matrices, the matrix product."),
    e("kt", "Kᵀ", "K transposed (rows made columns), so Q·Kᵀ holds the dot product of every query with every key."),
    e("scores", "S = Q·Kᵀ (scores)", "Row i, column j is how well query i matches key j: a signed number without bounds."),
    e("scale", "÷ √d_head", "Dividing the scores by the square root of d_head keeps their spread the same for any head size, so softmax does not saturate."),
    e("mask", "mask (causal)", "Where a query may not look, its score is set to −∞ (hatched on the map): a token sees only itself and the tokens before it."),
    e("softmax", "softmax", "Turns a row of numbers into positive weights that sum to 1: each is e to its number, divided by the row's total."),
    e("a", "A (attention weights)", "The softmax of each masked, scaled score row: how much each query token takes from each key token."),
    e("output", "O = A·V", "A head's output: for each token, the values of all tokens mixed in the proportions A gives."),
    e("mlp", "MLP", "The block after attention that works on each token alone: a widening matrix, a curve (GPT-2's GELU, a smooth ReLU; the Llama family's SwiGLU), a narrowing matrix."),
    e("logits", "logits", "One score per vocabulary token after the last layer: the higher, the more likely the model thinks that token comes next."),
    e("temperature", "temperature", "Logits are divided by it before softmax: below 1 sharpens the distribution, above 1 flattens it, 0 always picks the top token."),
    e("p", "p (probability)", "A token's probability: its share of softmax(logits / temperature), shown as a percentage."),
    e("top-k", "top-k, top-p", "Sampling limits: keep only the k most likely tokens, or the fewest whose probabilities add up to p, then renormalise."),
    e("seed", "seed", "The number that starts the random draws: the same seed, text and settings give the same generation every time."),
    e("kv-cache", "KV cache", "The keys and values of tokens already read, kept so that each new token computes only its own row instead of re-reading the text."),
    e("flop", "FLOP", "One floating-point operation (a multiply or an add); a forward pass's FLOPs measure its work."),
    e("bytes", "B, kB, MB", "Bytes: 1 kB is 1,000 bytes and 1 MB 1,000,000; a 32-bit float takes 4 bytes."),
    e("fertility", "tokens per word (fertility)", "How many tokens a tokenizer needs per word of a language: more tokens cost more compute and context."),
    e("unk", "UNK", "The unknown token: a tokenizer without byte fallback writes it for characters it cannot spell, losing them."),
    e("sink", "attention sink", "A head that puts most of its weight on the first token when nothing else fits, as a resting place."),
    e("dilution", "dilution", "As the context grows, softmax spreads weight over more keys, so the weight any one key gets shrinks."),
    e("prev-head", "previous-token head", "A head whose queries attend mostly to the token just before them."),
    e("induction", "induction head", "A head that finds an earlier copy of the current token and attends to the token that followed it, to predict a repeat."),
];

/// The terms each panel shows, linked under its text (`ui::panels::glossary::Terms`).
pub mod panel {
    pub const INPUT: &[&str] = &["token", "space", "t", "context"];
    pub const NEXT_TOKEN: &[&str] = &["logits", "softmax", "temperature", "p"];
    pub const GENERATE: &[&str] = &["seed", "temperature", "top-k", "p", "kv-cache", "flop", "bytes"];
    pub const HEAD_VIEW: &[&str] = &["layer", "head", "a", "q", "k"];
    pub const MODEL_GRID: &[&str] = &["layer", "head", "a", "gqa", "prev-head", "induction", "sink"];
    pub const RESIDUAL: &[&str] = &["residual", "norm", "embedding", "ln", "rmsnorm", "mlp", "swiglu", "d"];
    pub const TOKENIZERS: &[&str] = &["token", "fertility", "unk", "space"];
    pub const COST: &[&str] = &["flop", "t", "kv-cache", "gqa", "bytes", "mlp", "d"];
    pub const POSITIONS: &[&str] = &["rope", "rope-freq", "position-vector", "cosine", "d-head", "dot"];
    pub const DILUTION: &[&str] = &["dilution", "sink", "a", "softmax", "context"];
    pub const ATTENTION: &[&str] = &["layer", "head", "mask", "t", "d-head"];
}

/// The terms one attention stage's formula uses.
pub fn stage_terms(stage: crate::engine::AttentionStage) -> &'static [&'static str] {
    use crate::engine::AttentionStage as S;
    match stage {
        S::QPreRope => &["q", "rope", "ln", "w"],
        S::KPreRope => &["k", "rope", "ln", "w"],
        S::Q => &["q", "ln", "w", "dot"],
        S::K => &["k", "ln", "w", "dot"],
        S::V => &["v", "ln", "w", "dot"],
        S::ScoresRaw => &["scores", "kt", "dot"],
        S::ScoresScaled => &["scale", "scores", "softmax"],
        S::ScoresMasked => &["mask", "softmax"],
        S::Weights => &["softmax", "a"],
        S::Output => &["output", "a", "v"],
    }
}

/// The entry with this key.
pub fn lookup(key: &str) -> Option<&'static Entry> {
    ENTRIES.iter().find(|e| e.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_usable_in_element_ids() {
        for (i, a) in ENTRIES.iter().enumerate() {
            assert!(a.key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{}", a.key);
            assert!(ENTRIES[i + 1..].iter().all(|b| b.key != a.key), "duplicate key {}", a.key);
            assert!(a.meaning.ends_with('.'), "{}: one sentence", a.key);
        }
    }

    #[test]
    fn every_linked_term_has_an_entry() {
        let lists = [
            panel::INPUT,
            panel::NEXT_TOKEN,
            panel::GENERATE,
            panel::HEAD_VIEW,
            panel::MODEL_GRID,
            panel::RESIDUAL,
            panel::TOKENIZERS,
            panel::COST,
            panel::DILUTION,
            panel::ATTENTION,
            panel::POSITIONS,
        ];
        let stages = crate::engine::AttentionStage::ROPE.map(stage_terms);
        for key in lists.iter().chain(stages.iter()).flat_map(|l| l.iter()) {
            assert!(lookup(key).is_some(), "no glossary entry {key}");
        }
    }

    #[test]
    fn one_letter_per_meaning() {
        // A is the attention weights; no entry calls them W.
        assert!(lookup("a").is_some_and(|e| e.term.starts_with("A ")));
        assert!(ENTRIES.iter().all(|e| !e.meaning.contains("W·V") && !e.term.contains("W·V")));
    }
}
