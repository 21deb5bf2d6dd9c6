//! Prefix reuse on the CPU reference: the trace of a text from the trace of
//! its beginning. With a causal or sliding-window mask a later token never
//! changes an earlier one, so only the new tokens' rows are computed (the
//! raw scores of old queries against new keys, which the page shows
//! unmasked, are computed from Q and K when read). Typing at the end of the
//! text and generating then cost the new rows, as on the GPU. The result equals
//! `forward_cpu` on the whole text (tests below).

use std::sync::Arc;

use super::forward::HeadColumns;
use super::stepwise::TraceRun;
use super::trace::column_values;
use super::{AttentionTrace, EngineError, HeadTrace, LayerTrace, Mask, Matrix, SquareMatrix, Trace};
use crate::model::{ModelConfig, Token, Weights};

/// Whether `prev` can be extended to `tokens`: same mask, one that never lets
/// a token see a later one, and `prev`'s tokens a strict prefix of `tokens`.
pub fn can_extend(prev: &Trace, tokens: &[Token], mask: Mask) -> bool {
    let p = prev.tokens.len();
    tokens.len() > p && shared_prefix(prev, tokens, mask) == p
}

/// How many leading tokens of `prev`'s trace stay valid for `tokens`: the
/// tokens (by id) they share from the start, when the mask never lets a
/// token see a later one (else 0: every row may change). (A trace with the
/// last position's logits alone has none for an earlier one: a run cut from
/// it takes its last row again, [`TraceRun::new`].)
pub fn shared_prefix(prev: &Trace, tokens: &[Token], mask: Mask) -> usize {
    let logit_rows = prev.logits.rows;
    if prev.mask != mask || mask == Mask::Bidirectional || (logit_rows != prev.tokens.len() && logit_rows != 1) {
        return 0;
    }
    prev.tokens.iter().zip(tokens).take_while(|(a, b)| a.id == b.id).count()
}

/// A KV head's keys, values and keys before RoPE, shared by its query heads.
type KvRows = (Arc<Matrix>, Arc<Matrix>, Option<Arc<Matrix>>);

/// The trace of `prev`'s first `p` tokens, cut from it: exact when no token
/// sees a later one (causal and sliding-window masks), since then the first
/// `p` rows of every stage do not depend on the tokens after them. A trace
/// with the last position's logits alone keeps them only when `p` is its
/// length (else it has no logits row, [`Trace::logits_at`]: `None`).
pub fn truncate(prev: &Trace, p: usize) -> Trace {
    let heads = |l: &LayerTrace| {
        // The query heads of a group keep sharing their KV head's matrices.
        let mut group: Option<(&HeadTrace, KvRows)> = None;
        l.heads()
            .iter()
            .map(|h| {
                let (k, v, k_pre_rope) = match &group {
                    Some((first, kv)) if Arc::ptr_eq(&first.k, &h.k) => kv.clone(),
                    _ => {
                        let cut = |m: &Arc<Matrix>| Arc::new(m.first_rows(p));
                        let kv = (cut(&h.k), cut(&h.v), h.k_pre_rope.as_ref().map(cut));
                        group = Some((h, kv.clone()));
                        kv
                    }
                };
                HeadTrace {
                    q: h.q.first_rows(p),
                    k,
                    v,
                    scores_read: h.scores_read.as_ref().map(|m| m.first(p)),
                    mask: h.mask,
                    kept_weights: h.kept_weights.as_ref().map(|w| w.first(p)),
                    softmax: h.softmax.as_ref().map(|m| m.first_rows(p)),
                    output: h.output.first_rows(p),
                    q_pre_rope: h.q_pre_rope.as_ref().map(|m| m.first_rows(p)),
                    k_pre_rope,
                    kv_head: h.kv_head,
                }
            })
            .collect()
    };
    let cut = |m: &Option<Matrix>| m.as_ref().map(|m| m.first_rows(p));
    Trace {
        tokens: prev.tokens[..p.min(prev.tokens.len())].to_vec(),
        mask: prev.mask,
        embeddings: prev.embeddings.first_rows(p),
        layers: prev
            .layers
            .iter()
            .map(|l| LayerTrace {
                attention: AttentionTrace { ln_1: cut(&l.attention.ln_1), heads: heads(l) },
                attn_out: l.attn_out.first_rows(p),
                resid_mid: cut(&l.resid_mid),
                ln_2: cut(&l.ln_2),
                mlp_hidden: cut(&l.mlp_hidden),
                mlp_out: l.mlp_out.first_rows(p),
                resid_post: cut(&l.resid_post),
            })
            .collect(),
        ln_f: prev.ln_f.first_rows(p),
        logits: match prev.keeps_every_logits_row() {
            true => prev.logits.first_rows(p),
            false if p >= prev.tokens.len() => prev.logits.clone(),
            false => prev.logits.first_rows(0),
        },
    }
}

/// The trace of `tokens`, reusing as much of `prev` (a trace of another
/// text) as [`shared_prefix`] allows: the shared rows are kept (cut from
/// `prev` when the text lost or changed tokens after them, as a backspace
/// or an edit of the last word does) and only the rows after them are
/// computed; with nothing shared, a full [`forward_cpu`](super::forward_cpu).
/// (A [`TraceRun`] taken to its end at once.)
pub fn extend_cpu(
    config: &ModelConfig,
    weights: &Weights,
    prev: &Trace,
    tokens: Vec<Token>,
    mask: Mask,
) -> Result<Trace, EngineError> {
    Ok(TraceRun::new(config, weights, Some(prev), tokens, mask)?.finish())
}

/// What a block's attention computed for its new rows `p..T` (`n` of them).
#[derive(Debug, Default)]
pub(super) struct AttentionParts {
    /// The first norm, `[n × d]`.
    pub ln_1: Vec<f32>,
    /// The fused Q, K, V projection after RoPE, `[n × qkv_dim]`, and the Q
    /// and K columns before it (RoPE models), `[n × (q_dim + kv_dim)]`.
    pub qkv: Vec<f32>,
    pub pre: Option<Vec<f32>>,
    /// Weights of every head, `[H × n × T]` (over every key), when the
    /// trace keeps them (else empty).
    pub weights: Vec<f32>,
    /// Every head's rows' softmax max and sum, `[H × n × 2]`.
    pub softmax: Vec<f32>,
    /// The heads' outputs side by side, `[n × q_dim]`.
    pub out: Vec<f32>,
}

/// Every key and value of a block, `[T × kv_dim]` each: the kept rows'
/// from `old`'s first `p` rows (the first query head of each group holds
/// its KV head's), then the new rows' from their projection `qkv`.
pub(super) fn keys_and_values(
    config: &ModelConfig,
    old: Option<(&AttentionTrace, usize)>,
    qkv: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (kv_dim, q_dim, d_head, width) = (config.kv_dim(), config.q_dim(), config.d_head(), config.qkv_dim());
    let p = old.map_or(0, |(_, p)| p);
    let t = p + qkv.len() / width.max(1);
    let (mut keys, mut values) = (vec![0.0; t * kv_dim], vec![0.0; t * kv_dim]);
    if let Some((old, _)) = old {
        for (g, head) in old.heads.iter().step_by(config.kv_group().max(1)).enumerate() {
            for j in 0..p {
                keys[j * kv_dim + g * d_head..][..d_head].copy_from_slice(head.k.row(j));
                values[j * kv_dim + g * d_head..][..d_head].copy_from_slice(head.v.row(j));
            }
        }
    }
    for (j, row) in qkv.chunks_exact(width.max(1)).enumerate() {
        keys[(p + j) * kv_dim..][..kv_dim].copy_from_slice(&row[q_dim..][..kv_dim]);
        values[(p + j) * kv_dim..][..kv_dim].copy_from_slice(&row[q_dim + kv_dim..][..kv_dim]);
    }
    (keys, values)
}

/// A block's attention trace of all T rows: `old`'s first `p` rows (none:
/// every row is new) and the new rows' `parts`; and the new rows' heads'
/// outputs side by side (`parts.out`). Each matrix grows the old one's
/// buffer in place where it can; one that is copied (or new) leaves `room`
/// more rows.
pub(super) fn attention_trace(
    config: &ModelConfig,
    old: Option<(&AttentionTrace, usize)>,
    parts: AttentionParts,
    (mask, keep_ln_1): (Mask, bool),
    room: usize,
) -> (AttentionTrace, Vec<f32>) {
    let (d, d_head, width) = (config.n_embd, config.d_head(), config.qkv_dim());
    let (q_dim, kv_dim) = (config.q_dim(), config.kv_dim());
    let p = old.map_or(0, |(old, p)| p.min(old.rows()));
    let n = parts.ln_1.len() / d.max(1);
    let t = p + n;
    let llama = config.architecture.is_llama_family();
    let empty = SquareMatrix::default();
    // A new matrix's values get its room as they are gathered (a kept one copies them in).
    let head_rows = |old: Option<&Matrix>, all: &[f32], stride: usize, col: usize| {
        let new = column_values(all, n, stride, col, d_head, if old.is_some() { 0 } else { room });
        Matrix::after(old, p, new, d_head, room)
    };
    let pre_rows =
        |old: Option<&Matrix>, col: usize| parts.pre.as_ref().map(|pre| head_rows(old, pre, q_dim + kv_dim, col));
    // Each KV head's k, v and K before RoPE, built once from the first
    // query head of its group (which holds them in the old trace) and
    // shared by every query head of the group.
    let group = config.kv_group().max(1);
    let mut shared: Option<KvRows> = None;
    let heads = (0..config.n_head)
        .map(|h| {
            let old_head = old.and_then(|(old, _)| old.heads.get(h));
            let cols = HeadColumns::of(config, h);
            let (k, v, k_pre_rope) = match &shared {
                Some(kv) if h % group != 0 => kv.clone(),
                _ => {
                    let kv: KvRows = (
                        Arc::new(head_rows(old_head.map(|o| &*o.k), &parts.qkv, width, cols.k)),
                        Arc::new(head_rows(old_head.map(|o| &*o.v), &parts.qkv, width, cols.v)),
                        pre_rows(old_head.and_then(|o| o.k_pre_rope.as_deref()), cols.k).map(Arc::new),
                    );
                    shared = Some(kv.clone());
                    kv
                }
            };
            // The weights are kept when the new rows' are and so were the
            // kept rows' (grown from the old matrix itself: a clone would
            // hold its spare too); the softmax rows likewise.
            let kept_weights = match old_head.map(|o| o.kept_weights.as_ref()) {
                _ if parts.weights.is_empty() => None,
                Some(None) => None,
                old => {
                    let span = h * n * t..(h + 1) * n * t;
                    Some(old.flatten().unwrap_or(&empty).grown(p, t, room, &mut |_, _| {}, &parts.weights[span]))
                }
            };
            let softmax = match old_head.map(|o| o.softmax.as_ref()) {
                Some(None) => None,
                old => {
                    let new = parts.softmax.get(2 * h * n..2 * (h + 1) * n).unwrap_or_default().to_vec();
                    Some(Matrix::after(old.flatten(), p, new, 2, room))
                }
            };
            HeadTrace {
                q: head_rows(old_head.map(|o| &o.q), &parts.qkv, width, cols.q),
                output: head_rows(old_head.map(|o| &o.output), &parts.out, q_dim, cols.q),
                q_pre_rope: pre_rows(old_head.and_then(|o| o.q_pre_rope.as_ref()), cols.q),
                k_pre_rope,
                kv_head: llama.then_some(cols.kv_head),
                k,
                v,
                scores_read: None,
                mask,
                kept_weights,
                softmax,
            }
        })
        .collect();
    // Kept where asked and the kept rows' is (else computed when read: `Trace::ln_1`).
    let ln_1 = match old {
        _ if !keep_ln_1 => None,
        Some((o, _)) => o.ln_1.as_ref().map(|m| m.appended(p, &parts.ln_1, room)),
        None => Some(Matrix::after(None, 0, parts.ln_1, d, room)),
    };
    (AttentionTrace { ln_1, heads }, parts.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::init::random_weights;
    use crate::engine::residual::residual_norms;
    use crate::engine::sampling::Rng;
    use crate::engine::{forward_cpu, MatrixView};

    fn tokens(ids: &[u32]) -> Vec<Token> {
        ids.iter().map(|&id| Token { id, text: String::new(), start: 0, end: 0 }).collect()
    }

    fn same<'a>(a: impl Into<MatrixView<'a>>, b: impl Into<MatrixView<'a>>, what: &str) {
        let (a, b) = (a.into(), b.into());
        assert_eq!((a.rows, a.cols), (b.rows, b.cols), "{what}: shape");
        for (i, (x, y)) in a.values().zip(b.values()).enumerate() {
            let ok = (x == y) || (x - y).abs() <= 1e-5 * (1.0 + y.abs());
            assert!(ok, "{what}[{}][{}]: {x} vs {y}", i / a.cols.max(1), i % a.cols.max(1));
        }
    }

    /// Two matrices both traces keep (a trace that computes it when read
    /// is checked against one that keeps it in `stages_computed_when_read_*`).
    fn same_kept(a: &Option<Matrix>, b: &Option<Matrix>, what: &str) {
        if let (Some(a), Some(b)) = (a, b) {
            same(a, b, what);
        }
    }

    fn assert_traces_equal(a: &Trace, b: &Trace) {
        same(&a.embeddings, &b.embeddings, "embeddings");
        let t = a.tokens.len();
        for r in 0..=2 * a.layers.len() {
            let rows = |x: &Trace| Matrix::from_vec(t, x.embeddings.cols, x.stream_rows(r, 0..t).unwrap().into_owned());
            same(&rows(a), &rows(b), &format!("stream point {r}"));
        }
        for (l, (la, lb)) in a.layers.iter().zip(&b.layers).enumerate() {
            same_kept(&la.attention.ln_1, &lb.attention.ln_1, &format!("L{l} ln_1"));
            for (h, (ha, hb)) in la.heads().iter().zip(lb.heads()).enumerate() {
                let w = format!("L{l}H{h}");
                assert_eq!(ha.kv_head, hb.kv_head, "{w} kv_head");
                assert_eq!(ha.q_pre_rope.is_some(), hb.q_pre_rope.is_some(), "{w} q_pre_rope");
                if let (Some(a), Some(b)) = (&ha.q_pre_rope, &hb.q_pre_rope) {
                    same(a, b, &format!("{w} q_pre_rope"));
                }
                if let (Some(a), Some(b)) = (&ha.k_pre_rope, &hb.k_pre_rope) {
                    same(&**a, &**b, &format!("{w} k_pre_rope"));
                }
                same(&ha.q, &hb.q, &format!("{w} q"));
                same(&*ha.k, &*hb.k, &format!("{w} k"));
                same(&*ha.v, &*hb.v, &format!("{w} v"));
                same(&ha.scores_raw(), &hb.scores_raw(), &format!("{w} raw"));
                same(&ha.scores_scaled(), &hb.scores_scaled(), &format!("{w} scaled"));
                same(&ha.scores_masked(), &hb.scores_masked(), &format!("{w} masked"));
                assert_eq!(ha.mask, hb.mask, "{w} mask");
                same(&*ha.weights(), &*hb.weights(), &format!("{w} weights"));
                same(&ha.output, &hb.output, &format!("{w} output"));
            }
            same(&la.attn_out, &lb.attn_out, &format!("L{l} attn_out"));
            same_kept(&la.ln_2, &lb.ln_2, &format!("L{l} ln_2"));
            same_kept(&la.mlp_hidden, &lb.mlp_hidden, &format!("L{l} mlp_hidden"));
            same(&la.mlp_out, &lb.mlp_out, &format!("L{l} mlp_out"));
        }
        same(&a.ln_f, &b.ln_f, "ln_f");
        same_logits(a, b);
    }

    /// The logits rows both traces hold (every row, or the last alone) agree.
    fn same_logits(a: &Trace, b: &Trace) {
        assert_eq!(a.tokens.len(), b.tokens.len(), "tokens");
        for p in 0..a.tokens.len() {
            if let (Some(x), Some(y)) = (a.logits_at(p), b.logits_at(p)) {
                let (x, y) = (Matrix::from_vec(1, x.len(), x.to_vec()), Matrix::from_vec(1, y.len(), y.to_vec()));
                same(&x, &y, &format!("logits after {p}"));
            }
        }
        let last = a.tokens.len().saturating_sub(1);
        assert_eq!(a.logits_at(last).map(<[f32]>::len), b.logits_at(last).map(<[f32]>::len), "last logits");
        assert_eq!(a.tokens, b.tokens);
    }

    fn pick(rng: &mut Rng, lo: u64, hi: u64) -> usize {
        (lo + rng.next_u64() % (hi - lo + 1)) as usize
    }

    /// A random model of either family (even cases GPT-2, odd ones Llama with
    /// grouped KV heads) and a mask that never lets a token see a later one.
    fn random_case(rng: &mut Rng, case: u64) -> (ModelConfig, Weights, Mask) {
        let n_kv_head = pick(rng, 1, 3);
        let n_head = n_kv_head * pick(rng, 1, 3);
        let (n_layer, d_head) = (pick(rng, 1, 3), 2 * pick(rng, 1, 4));
        let config = if case.is_multiple_of(2) {
            ModelConfig::tiny(n_layer, n_head, n_head * d_head, 24, 40)
        } else {
            ModelConfig::llama((n_layer, n_head, n_kv_head, d_head), 12, 20, 24, 40)
        };
        let w = random_weights(&config, case);
        let mask = if case % 4 < 2 { Mask::Causal } else { Mask::Window(pick(rng, 1, 5) as u32) };
        (config, w, mask)
    }

    #[test]
    fn an_extended_trace_equals_a_full_run_on_random_shapes() {
        let mut rng = Rng::new(5);
        for case in 0..40 {
            let (config, w, mask) = random_case(&mut rng, case);
            let t = pick(&mut rng, 2, 24);
            let p = pick(&mut rng, 1, t as u64 - 1);
            let ids: Vec<u32> = (0..t).map(|_| (rng.next_u64() % 40) as u32).collect();
            let prefix = forward_cpu(&config, &w, tokens(&ids[..p]), mask).unwrap();
            assert!(can_extend(&prefix, &tokens(&ids), mask));
            let extended = extend_cpu(&config, &w, &prefix, tokens(&ids), mask).unwrap();
            let full = forward_cpu(&config, &w, tokens(&ids), mask).unwrap();
            assert_traces_equal(&extended, &full);
        }
    }

    #[test]
    fn any_shared_prefix_is_reused_and_the_result_equals_a_full_run() {
        let mut rng = Rng::new(11);
        for case in 0..40 {
            let (config, w, mask) = random_case(&mut rng, case);
            // An old text, and a new one that keeps its first `keep` tokens and
            // then goes on differently (shorter, as long, or longer).
            let old_len = pick(&mut rng, 1, 20);
            let old: Vec<u32> = (0..old_len).map(|_| (rng.next_u64() % 40) as u32).collect();
            let keep = pick(&mut rng, 1, old_len as u64);
            let new_len = pick(&mut rng, keep as u64, 24);
            let mut new: Vec<u32> = old[..keep].to_vec();
            new.extend(
                (keep..new_len).map(|i| if i < old_len { (old[i] + 1) % 40 } else { (rng.next_u64() % 40) as u32 }),
            );
            let prev = forward_cpu(&config, &w, tokens(&old), mask).unwrap();
            assert_eq!(shared_prefix(&prev, &tokens(&new), mask), keep.min(new_len));
            let got = extend_cpu(&config, &w, &prev, tokens(&new), mask).unwrap();
            assert_traces_equal(&got, &forward_cpu(&config, &w, tokens(&new), mask).unwrap());
            // A cut trace is the trace of the shorter text.
            assert_traces_equal(&truncate(&prev, keep), &forward_cpu(&config, &w, tokens(&old[..keep]), mask).unwrap());
        }
    }

    /// Every weight of `lazy` (a trace that keeps none, or some) read as
    /// the page reads them, bit for bit `kept`'s.
    fn same_weights_bit_for_bit(lazy: &Trace, kept: &Trace, what: &str) {
        let t = kept.tokens.len();
        assert_eq!(lazy.tokens.len(), t, "{what}");
        for (l, (la, lb)) in lazy.layers.iter().zip(&kept.layers).enumerate() {
            for (h, (a, b)) in la.heads().iter().zip(lb.heads()).enumerate() {
                let w = format!("{what} L{l}H{h}");
                assert!(b.kept_weights.is_some() && a.softmax.is_some(), "{w}: the CPU keeps each row's softmax");
                let whole = a.weights();
                // Some rows and columns, out of order (a grid tile's picks).
                let picks: Vec<usize> = (0..t).rev().step_by(2).chain([0]).collect();
                let picked = a.weights_at(&picks, &picks);
                for (r, &i) in picks.iter().enumerate() {
                    for (c, &j) in picks.iter().enumerate() {
                        assert_eq!(picked.at(r, c).to_bits(), b.weight(i, j).to_bits(), "{w} picked ({i}, {j})");
                    }
                }
                for i in 0..t {
                    let row = a.weight_row(i);
                    for j in 0..t {
                        let want = b.weight(i, j).to_bits();
                        assert_eq!(a.weight(i, j).to_bits(), want, "{w} ({i}, {j})");
                        assert_eq!((row[j].to_bits(), whole.at(i, j).to_bits()), (want, want), "{w} ({i}, {j})");
                    }
                }
            }
        }
    }

    /// A trace that keeps no T×T weights computes each one from Q, K and
    /// its row's softmax max and sum when read: bit for bit the one a trace
    /// that keeps them holds, for whole runs, runs a row at a time,
    /// extensions of either kind of trace, and cuts; on random shapes of
    /// both families, with every mask.
    #[test]
    fn weights_computed_when_read_equal_the_kept_ones_bit_for_bit() {
        let mut rng = Rng::new(23);
        for case in 0..24 {
            let (config, w, mut mask) = random_case(&mut rng, case);
            if case % 8 == 7 {
                mask = Mask::Bidirectional; // (nothing to extend: every run is whole)
            }
            let t = pick(&mut rng, 1, 24);
            let p = pick(&mut rng, 1, t as u64);
            let ids: Vec<u32> = (0..t).map(|_| (rng.next_u64() % 40) as u32).collect();
            let run = |prev: Option<&Trace>, ids: &[u32], keep: bool, flops: u64| {
                let run = TraceRun::new(&config, &w, prev, tokens(ids), mask).unwrap();
                run.block_flops(flops).keeping_weights(keep).finish()
            };
            // Each lazy run beside its twin that keeps the weights, computed
            // in the same pieces (a product taken a column at a time may
            // round otherwise than whole).
            let (row, whole) = (1, u64::MAX);
            let kept = run(None, &ids, true, whole);
            let kept_prefix = run(None, &ids[..p], true, whole);
            let lazy = run(None, &ids, false, whole);
            let lazy_prefix = run(None, &ids[..p], false, whole);
            let (lazy_rows, kept_rows) = (run(None, &ids[..p], false, row), run(None, &ids[..p], true, row));
            let extended = run(Some(&kept_prefix), &ids, true, whole);
            let runs = [
                ("whole", lazy.clone(), kept.clone()),
                (
                    "a row at a time after a lazy prefix",
                    run(Some(&lazy_rows), &ids, false, row),
                    run(Some(&kept_rows), &ids, true, row),
                ),
                ("after a kept prefix", run(Some(&kept_prefix), &ids, false, whole), extended.clone()),
                ("kept after a lazy prefix", run(Some(&lazy_prefix), &ids, true, whole), extended),
            ];
            for (what, trace, twin) in runs {
                // Weights are kept only where the run keeps them and so did
                // what it extends: a bidirectional mask extends nothing, and
                // with nothing new to compute a run is its prefix.
                let bidirectional = mask == Mask::Bidirectional;
                let may_keep = match what {
                    "after a kept prefix" => p == t && !bidirectional,
                    "kept after a lazy prefix" => bidirectional,
                    _ => false,
                };
                let none_kept = trace.layers.iter().flat_map(LayerTrace::heads).all(|h| h.kept_weights.is_none());
                assert_eq!(!none_kept, may_keep, "case {case} {what}: weights kept");
                same_weights_bit_for_bit(&trace, &twin, &format!("case {case} {what}"));
                assert_traces_equal(&trace, &kept);
            }
            if mask != Mask::Bidirectional {
                // (Cutting is exact only when no token sees a later one.)
                same_weights_bit_for_bit(&truncate(&lazy, p), &truncate(&kept, p), &format!("case {case} cut"));
            }
        }
    }

    /// A stage's matrix computed a piece of rows at a time (as the page
    /// computes a large map between pauses) is bit for bit the matrix
    /// computed whole, for every stage, on traces that keep the weights and
    /// traces that do not.
    #[test]
    fn a_stage_matrix_in_pieces_of_rows_is_the_whole_one() {
        use crate::engine::stage::AttentionStage;
        let mut rng = Rng::new(43);
        for case in 0..12 {
            let (config, w, mask) = random_case(&mut rng, case);
            let t = pick(&mut rng, 1, 20);
            let ids: Vec<u32> = (0..t).map(|_| (rng.next_u64() % 40) as u32).collect();
            for keep in [true, false] {
                let trace =
                    TraceRun::new(&config, &w, None, tokens(&ids), mask).unwrap().keeping_weights(keep).finish();
                let head = &trace.layers[config.n_layer - 1].heads()[config.n_head - 1];
                for stage in AttentionStage::ROPE {
                    let whole = stage.matrix(head);
                    let piece = pick(&mut rng, 1, t as u64);
                    let mut rows = Vec::new();
                    for start in (0..t).step_by(piece) {
                        rows.extend(stage.matrix_rows(head, start..(start + piece).min(t)).unwrap());
                    }
                    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&rows), bits(&whole.data), "case {case} {stage:?} weights kept {keep}");
                    assert!(stage.matrix_rows(head, 0..t + 1).is_none());
                }
            }
        }
    }

    /// A trace that keeps no norms, stream or MLP hidden layer computes
    /// them when read: the stream (the forward's own adds) and the norms
    /// bit for bit a kept trace's, the MLP's hidden layer within rounding
    /// (a product on other rows); for whole runs, runs a row at a time,
    /// extensions of either kind of trace and cuts, on random shapes of
    /// both families; the residual norms, the lens and an intervention the
    /// same read from either.
    #[test]
    fn stages_computed_when_read_equal_the_kept_ones() {
        let mut rng = Rng::new(41);
        for case in 0..16 {
            let (config, w, mask) = random_case(&mut rng, case);
            let t = pick(&mut rng, 2, 20);
            let p = pick(&mut rng, 1, t as u64 - 1);
            let ids: Vec<u32> = (0..t).map(|_| (rng.next_u64() % 40) as u32).collect();
            let run = |prev: Option<&Trace>, ids: &[u32], keep: bool, flops: u64| {
                let run = TraceRun::new(&config, &w, prev, tokens(ids), mask).unwrap();
                run.block_flops(flops).keeping_stages(keep).finish()
            };
            // Each lean run beside its twin that keeps the stages, computed
            // in the same pieces (a product taken a column at a time may
            // round otherwise than whole).
            let (row, whole) = (1, u64::MAX);
            let (kept_prefix, lean_prefix) = (run(None, &ids[..p], true, whole), run(None, &ids[..p], false, whole));
            let (kept_rows, lean_rows) = (run(None, &ids[..p], true, row), run(None, &ids[..p], false, row));
            let after_kept = run(Some(&kept_prefix), &ids, true, whole);
            let longer = [&ids[..], &[7, 3]].concat();
            let runs = [
                ("whole", run(None, &ids, false, whole), run(None, &ids, true, whole)),
                (
                    "a row at a time after a lean prefix",
                    run(Some(&lean_rows), &ids, false, row),
                    run(Some(&kept_rows), &ids, true, row),
                ),
                ("lean after a kept prefix", run(Some(&kept_prefix), &ids, false, whole), after_kept.clone()),
                ("kept after a lean prefix (so lean)", run(Some(&lean_prefix), &ids, true, whole), after_kept),
                ("cut", truncate(&run(None, &longer, false, whole), t), truncate(&run(None, &longer, true, whole), t)),
            ];
            for (what, lean, kept) in runs {
                let what = format!("case {case} {what}");
                assert!(lean.layers.iter().all(|l| !l.keeps_stages() && l.attention.ln_1.is_none()), "{what}");
                assert!(kept.layers.iter().all(LayerTrace::keeps_stages), "{what}");
                let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                // Every point of the stream, whole and one row at a time.
                for r in 0..=2 * config.n_layer {
                    let want = kept.stream_rows(r, 0..t).unwrap();
                    assert_eq!(bits(&lean.stream_rows(r, 0..t).unwrap()), bits(&want), "{what} point {r}");
                    let i = pick(&mut rng, 0, t as u64 - 1);
                    assert_eq!(
                        bits(&lean.stream_rows(r, i..i + 1).unwrap()),
                        bits(&want[i * config.n_embd..][..config.n_embd])
                    );
                }
                assert!(
                    lean.stream_rows(2 * config.n_layer + 1, 0..t).is_none() && lean.stream_rows(0, 0..t + 1).is_none()
                );
                for l in 0..config.n_layer {
                    let all = 0..t;
                    let (a, b) = (
                        lean.ln_1(&config, &w, l, all.clone()).unwrap(),
                        kept.ln_1(&config, &w, l, all.clone()).unwrap(),
                    );
                    assert_eq!(bits(&a), bits(&b), "{what} L{l} ln_1");
                    let (a, b) = (
                        lean.ln_2(&config, &w, l, all.clone()).unwrap(),
                        kept.ln_2(&config, &w, l, all.clone()).unwrap(),
                    );
                    assert_eq!(bits(&a), bits(&b), "{what} L{l} ln_2");
                    let (a, b) = (
                        lean.mlp_hidden(&config, &w, l, all.clone()).unwrap(),
                        kept.mlp_hidden(&config, &w, l, all).unwrap(),
                    );
                    let m = config.n_inner;
                    same(
                        &Matrix::from_vec(t, m, a.into_owned()),
                        &Matrix::from_vec(t, m, b.into_owned()),
                        &format!("{what} L{l} mlp_hidden"),
                    );
                    let i = t - 1;
                    let row = lean.mlp_hidden(&config, &w, l, i..t).unwrap();
                    same(
                        &Matrix::from_vec(1, m, row.into_owned()),
                        &Matrix::from_vec(1, m, kept.layers[l].mlp_hidden.as_ref().unwrap().row(i).to_vec()),
                        &what,
                    );
                    assert!(
                        lean.ln_1(&config, &w, l, 0..t + 1).is_none()
                            && lean.mlp_hidden(&config, &w, config.n_layer, 0..1).is_none()
                    );
                }
                assert_eq!(
                    bits(&residual_norms(&lean).data),
                    bits(&residual_norms(&kept).data),
                    "{what} residual norms"
                );
                assert_traces_equal(&lean, &kept);
                // An intervention reads the stream entering its first layer; its layers are lean as the clean run's.
                let iv = [crate::engine::intervene::Intervention {
                    layer: config.n_layer - 1,
                    head: 0,
                    kind: crate::engine::intervene::Replacement::Zero,
                }];
                let (a, b) = (
                    crate::engine::intervene::intervene(&config, &w, &lean, None, &iv).unwrap(),
                    crate::engine::intervene::intervene(&config, &w, &kept, None, &iv).unwrap(),
                );
                assert!(
                    !a.trace.layers.last().unwrap().keeps_stages() && b.trace.layers.last().unwrap().keeps_stages(),
                    "{what}"
                );
                assert_traces_equal(&a.trace, &b.trace);
                let point = |x: &Trace| {
                    crate::pace::at_once(crate::engine::lens::lens_point(
                        &config,
                        &w,
                        x,
                        1,
                        0..t,
                        3,
                        &|id| id.to_string(),
                        crate::pace::go_on,
                    ))
                    .unwrap()
                };
                let entries =
                    |x: &Trace| point(x).top.iter().flatten().map(|e| (e.id, e.logit.to_bits())).collect::<Vec<_>>();
                assert_eq!(entries(&lean), entries(&kept), "{what} lens");
            }
        }
    }

    /// Keystrokes as the page makes them, every trace kept (the screen holds
    /// the previous one while the next runs): each equals a full run of its
    /// text, and still does after the later ones appended to the buffers it
    /// shares. The kept rows are the previous trace's own buffers (appended
    /// in place, not copied: a run leaves room for more rows); a backspace
    /// cuts without copying; a new character after it copies (the cut rows'
    /// successors were written).
    #[test]
    fn keystrokes_share_the_kept_rows_and_leave_earlier_traces_intact() {
        let mut rng = Rng::new(17);
        for case in 0..6 {
            let (config, w, _) = random_case(&mut rng, case);
            let mask = Mask::Causal;
            let mut text: Vec<u32> = (0..5).map(|_| (rng.next_u64() % 40) as u32).collect();
            let mut traces = vec![(text.clone(), forward_cpu(&config, &w, tokens(&text), mask).unwrap())];
            // Append ×3, backspace, append, append.
            for (step, edit) in ["+", "+", "+", "-", "+", "+"].into_iter().enumerate() {
                match edit {
                    "+" => text.push((rng.next_u64() % 40) as u32),
                    _ => _ = text.pop(),
                }
                let prev = &traces.last().unwrap().1;
                let next = extend_cpu(&config, &w, prev, tokens(&text), mask).unwrap();
                let (h, g) = (&next.layers[0].heads()[0], &prev.layers[0].heads()[0]);
                let (resid, old) = (&next.layers[0].resid_post, &prev.layers[0].resid_post);
                let shares = resid.as_ref().unwrap().data.shares_with(&old.as_ref().unwrap().data)
                    && next.logits.data.shares_with(&prev.logits.data)
                    && h.q.data.shares_with(&g.q.data)
                    && h.k.data.shares_with(&g.k.data)
                    && h.kept_weights.as_ref().unwrap().shares_with(g.kept_weights.as_ref().unwrap());
                // Steps 0 to 2 append in place (a run leaves room for 16 more rows), 3 cuts,
                // 4 copies (step 2's row was written past the cut), 5 appends in place.
                assert_eq!(shares, [true, true, true, true, false, true][step], "case {case} step {step}");
                traces.push((text.clone(), next));
            }
            for (ids, trace) in &traces {
                assert_traces_equal(trace, &forward_cpu(&config, &w, tokens(ids), mask).unwrap());
            }
        }
    }

    /// Traces that keep their last logits row alone, as the page's do,
    /// through keystrokes (appends, a paste, backspaces, an edit, the same ids) and
    /// cuts: every other stage equals a full run of the text, the last row
    /// its last row; an earlier row is not there to read. A backspace is a
    /// cut (the same buffers, not one row computed again) whose last row's
    /// logits the LM head computes from the kept final norm.
    #[test]
    fn traces_with_the_last_logits_row_alone_through_keystrokes() {
        let mut rng = Rng::new(31);
        for case in 0..12 {
            let (config, w, mask) = random_case(&mut rng, case);
            let full = |ids: &[u32]| forward_cpu(&config, &w, tokens(ids), mask).unwrap();
            let mut text: Vec<u32> = (0..4).map(|_| (rng.next_u64() % 40) as u32).collect();
            let first = TraceRun::new(&config, &w, None, tokens(&text), mask).unwrap();
            let mut trace = first.every_logits(false).finish();
            assert_traces_equal(&trace, &full(&text));
            for (step, edit) in ["+", "+", "-", "-", "=", "~", "+++", "-", "+"].into_iter().enumerate() {
                match edit {
                    "+" | "+++" => text.extend((0..edit.len()).map(|_| (rng.next_u64() % 40) as u32)),
                    "-" => _ = text.pop(),
                    "~" => *text.last_mut().unwrap() = (text.last().unwrap() + 1) % 40,
                    _ => {}
                }
                let what = format!("case {case} step {step} ({edit})");
                // A run after a last-row-alone trace keeps the last row alone, asked or not.
                let run = TraceRun::new(&config, &w, Some(&trace), tokens(&text), mask).unwrap();
                let (done, steps) = run.progress();
                let next = if step % 2 == 0 { run.every_logits(false) } else { run }.finish();
                if edit == "-" {
                    let lm_head = config.vocab_size.div_ceil(crate::engine::forward::head_piece_columns(
                        1,
                        config.n_embd,
                        config.vocab_size,
                        u64::MAX,
                    ));
                    assert_eq!((done, steps), (0, lm_head), "{what}: the LM head's steps alone");
                    let (a, b) = (&next.layers.last().unwrap().mlp_out, &trace.layers.last().unwrap().mlp_out);
                    assert!(a.data.shares_with(&b.data) && next.ln_f.data.shares_with(&trace.ln_f.data), "{what}");
                    let row = crate::engine::kernels::lm_head(
                        next.ln_f.row(text.len() - 1),
                        w.head(),
                        1,
                        config.n_embd,
                        config.vocab_size,
                    );
                    assert_eq!(next.last_logits(), &row[..], "{what}: the LM head on the kept final norm's row");
                }
                let want = full(&text);
                assert_traces_equal(&next, &want);
                let t = text.len();
                assert_eq!((next.logits.rows, next.logits_at(t - 1).is_some()), (1, true), "{what}");
                assert_eq!(next.last_logits().len(), config.vocab_size, "{what}");
                if t > 1 {
                    assert!(next.logits_at(t - 2).is_none() && !next.keeps_every_logits_row(), "{what}");
                }
                if mask != Mask::Bidirectional {
                    // A cut of it holds no logits but at its whole length.
                    let cut = truncate(&next, t - 1);
                    assert_eq!(cut.logits.rows, usize::from(t == 1), "{what} cut");
                    assert_eq!(truncate(&next, t).last_logits(), next.last_logits(), "{what} uncut");
                }
                trace = next;
            }
            // A whole trace's every row, cut to the last alone on asking: the same row.
            let all = full(&text);
            let last =
                TraceRun::new(&config, &w, Some(&all), tokens(&text), mask).unwrap().every_logits(false).finish();
            assert_eq!(last.last_logits(), all.last_logits(), "case {case}: the same ids");
        }
    }

    /// Where a trace's buffers lie: a per-token stage, the logits, and a
    /// head's keys and weights in the last layer.
    fn buffers(t: &Trace) -> [*const f32; 4] {
        let (layer, head) = (t.layers.last().unwrap(), &t.layers.last().unwrap().heads()[0]);
        [layer.mlp_out.data.as_ptr(), t.logits.data.as_ptr(), head.k.data.as_ptr(), head.weight_row(0).as_ptr()]
    }

    /// Typing inside the last word: each keystroke changes the last token,
    /// and the page drops a trace once the next is on screen. The first
    /// edit copies the kept rows (the trace before still reads its last
    /// row); from then on each writes its new row into the buffers of the
    /// trace two keystrokes back, copying nothing, and equals a full run.
    #[test]
    fn edits_of_the_last_token_take_turns_in_two_sets_of_buffers() {
        let mut rng = Rng::new(23);
        for case in 0..6 {
            let (config, w, _) = random_case(&mut rng, case);
            let mask = Mask::Causal;
            let mut text: Vec<u32> = (0..6).map(|_| (rng.next_u64() % 40) as u32).collect();
            let mut shown = forward_cpu(&config, &w, tokens(&text), mask).unwrap();
            let mut places = vec![buffers(&shown)];
            for step in 0..5 {
                *text.last_mut().unwrap() = (text[text.len() - 1] + 1 + step) % 40;
                let next = extend_cpu(&config, &w, &shown, tokens(&text), mask).unwrap();
                assert_traces_equal(&next, &forward_cpu(&config, &w, tokens(&text), mask).unwrap());
                places.push(buffers(&next));
                shown = next; // the trace before is dropped
            }
            assert!(places[1].iter().zip(&places[0]).all(|(a, b)| a != b), "case {case}: the first edit copies");
            for k in 2..places.len() {
                assert_eq!(places[k], places[k - 2], "case {case} edit {k}: the buffers of two keystrokes back");
            }
        }
    }

    #[test]
    fn what_cannot_be_extended_runs_in_full() {
        let config = ModelConfig::tiny(1, 2, 8, 16, 20);
        let w = random_weights(&config, 1);
        let prefix = forward_cpu(&config, &w, tokens(&[1, 2, 3]), Mask::Causal).unwrap();
        for (ids, mask) in [
            (vec![1, 2, 3, 4], Mask::Bidirectional), // a later token changes earlier rows
            (vec![1, 9, 3, 4], Mask::Causal),        // not a prefix (its first row is reused)
            (vec![1, 2], Mask::Causal),              // shorter (cut from the prefix's trace)
            (vec![1, 2, 3, 4], Mask::Window(2)),     // another mask than the prefix's
        ] {
            assert!(!can_extend(&prefix, &tokens(&ids), mask));
            let got = extend_cpu(&config, &w, &prefix, tokens(&ids), mask).unwrap();
            assert_traces_equal(&got, &forward_cpu(&config, &w, tokens(&ids), mask).unwrap());
        }
        assert!(extend_cpu(&config, &w, &prefix, tokens(&[1, 2, 3, 99]), Mask::Causal).is_err(), "bad id");
    }
}
