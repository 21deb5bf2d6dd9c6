//! Filling an `AttentionTrace` from the GPU's buffers: for the tests that
//! compare backends. The app never does this; it reads slices.

use super::{GpuAttention, GpuContext, GpuError, Stage};
use crate::engine::{AttentionTrace, HeadTrace, Mask, Matrix};

/// Runs the GPU attention layer on `ids` and reads every stage back.
pub async fn trace_attention_gpu(
    ctx: &GpuContext,
    attn: &mut GpuAttention,
    ids: &[u32],
    mask: Mask,
) -> Result<AttentionTrace, GpuError> {
    attn.run(ctx, ids, mask)?;
    let t = ids.len();
    let (n_head, d) = (attn.n_head(), attn.stage_len(Stage::Ln1) / t.max(1));
    let d_head = d / n_head.max(1);
    let scale = 1.0 / (d_head as f32).sqrt();
    let ln_1 = attn.read(ctx, Stage::Ln1, 0, t * d).await?;
    let qkv = attn.read(ctx, Stage::Qkv, 0, t * 3 * d).await?;
    let head_out = attn.read(ctx, Stage::HeadOut, 0, t * d).await?;
    let columns = |all: &[f32], stride: usize, offset: usize| Matrix::from_columns(all, t, stride, offset, d_head);
    let mut heads = Vec::with_capacity(n_head);
    for h in 0..n_head {
        let raw = attn.read_head(ctx, Stage::ScoresRaw, h).await?;
        let masked = attn.read_head(ctx, Stage::ScoresMasked, h).await?;
        let weights = attn.read_head(ctx, Stage::Weights, h).await?;
        heads.push(HeadTrace {
            q: columns(&qkv, 3 * d, h * d_head),
            k: columns(&qkv, 3 * d, d + h * d_head),
            v: columns(&qkv, 3 * d, 2 * d + h * d_head),
            scores_scaled: Matrix::from_vec(t, t, raw.iter().map(|s| s * scale).collect()),
            scores_raw: Matrix::from_vec(t, t, raw),
            scores_masked: Matrix::from_vec(t, t, masked),
            weights: Matrix::from_vec(t, t, weights),
            output: columns(&head_out, d, h * d_head),
        });
    }
    Ok(AttentionTrace { ln_1: Matrix::from_vec(t, d, ln_1), heads })
}
