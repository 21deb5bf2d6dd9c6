//! Filling a full `Trace` from the GPU's buffers: for the CLI and the tests
//! that compare backends. The app never does this; it reads slices.

use super::{GpuAttention, GpuContext, GpuError, Stage};
use crate::engine::{HeadTrace, LayerTrace, Mask, Matrix, Trace};
use crate::model::Token;

/// Runs the GPU attention layer on `tokens` and reads every stage back.
pub async fn trace_attention_gpu(
    ctx: &GpuContext,
    attn: &mut GpuAttention,
    tokens: Vec<Token>,
    mask: Mask,
) -> Result<Trace, GpuError> {
    let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
    attn.run(ctx, &ids, mask)?;
    let t = ids.len();
    let (n_head, d) = (attn.n_head(), attn.stage_len(Stage::Ln1) / t.max(1));
    let d_head = d / n_head.max(1);
    let scale = 1.0 / (d_head as f32).sqrt();
    let ln_1 = attn.read(ctx, Stage::Ln1, 0, t * d).await?;
    let qkv = attn.read(ctx, Stage::Qkv, 0, t * 3 * d).await?;
    let columns = |offset: usize| {
        let data = (0..t).flat_map(|i| qkv[i * 3 * d + offset..][..d_head].iter().copied()).collect();
        Matrix::from_vec(t, d_head, data)
    };
    let mut heads = Vec::with_capacity(n_head);
    for h in 0..n_head {
        let raw = attn.read_head(ctx, Stage::ScoresRaw, h).await?;
        let masked = attn.read_head(ctx, Stage::ScoresMasked, h).await?;
        let weights = attn.read_head(ctx, Stage::Weights, h).await?;
        heads.push(HeadTrace {
            q: columns(h * d_head),
            k: columns(d + h * d_head),
            v: columns(2 * d + h * d_head),
            scores_scaled: Matrix::from_vec(t, t, raw.iter().map(|s| s * scale).collect()),
            scores_raw: Matrix::from_vec(t, t, raw),
            scores_masked: Matrix::from_vec(t, t, masked),
            weights: Matrix::from_vec(t, t, weights),
        });
    }
    Ok(Trace { tokens, layers: vec![LayerTrace { ln_1: Matrix::from_vec(t, d, ln_1), heads }] })
}
