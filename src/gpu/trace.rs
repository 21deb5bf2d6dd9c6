//! A whole `Trace` from the GPU's buffers: what `attnscope trace --backend gpu`
//! prints and what the tests compare with the CPU reference. The app never
//! does this; it reads slices.

use super::{GpuContext, GpuError, GpuForward, RunOptions, Stage};
use crate::engine::{AttentionTrace, EngineError, HeadTrace, LayerTrace, Mask, Matrix, SquareMatrix, Trace};
use crate::model::Token;

impl GpuForward {
    /// Runs the traced forward pass on `tokens` and reads every stage back.
    /// With `all_logits` false, `logits` holds only the last position's row.
    pub async fn trace(
        &mut self,
        ctx: &GpuContext,
        tokens: Vec<Token>,
        mask: Mask,
        all_logits: bool,
    ) -> Result<Trace, GpuError> {
        let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
        if ids.is_empty() {
            return Err(EngineError::Empty.into());
        }
        self.run(ctx, &ids, RunOptions { mask, trace: true, all_logits })?;
        self.read_trace(ctx, tokens).await
    }

    /// Reads every stage of what the buffers hold now (the last traced run,
    /// or an intervened one) back as a `Trace` of `tokens` (the last run's).
    /// Without all-position logits, `logits` holds only the last position's row.
    pub async fn read_trace(&self, ctx: &GpuContext, tokens: Vec<Token>) -> Result<Trace, GpuError> {
        let (Some(mask), true) = (self.mask(), self.traced()) else {
            return Err(GpuError::OutOfRange("a trace: the last run did not keep one".into()));
        };
        if tokens.len() != self.tokens() || tokens.iter().zip(self.ids()).any(|(t, &id)| t.id != id) {
            return Err(GpuError::OutOfRange("a trace of other tokens than the last run's".into()));
        }
        let all_logits = self.all_logits();
        let c = self.config().clone();
        let (t, d, n_head, d_head) = (tokens.len(), c.n_embd, c.n_head, c.d_head());
        let (q_dim, kv_dim, width) = (c.q_dim(), c.kv_dim(), c.qkv_dim());
        let llama = c.architecture.is_llama_family();
        let rows = |data: Vec<f32>, cols: usize| Matrix::from_vec(t, cols, data);
        let mut layers = Vec::with_capacity(c.n_layer);
        for l in 0..c.n_layer {
            let qkv = self.read_rows(ctx, Stage::Qkv, l).await?;
            let head_out = self.read_rows(ctx, Stage::HeadOut, l).await?;
            let pre = if llama { Some(self.read_rows(ctx, Stage::QkPreRope, l).await?) } else { None };
            let mut heads = Vec::with_capacity(n_head);
            for h in 0..n_head {
                let raw = self.read_head(ctx, Stage::ScoresRaw, l, h).await?;
                let kv_head = h / c.kv_group().max(1);
                let (q_col, k_col) = (h * d_head, q_dim + kv_head * d_head);
                let pre_cols =
                    |col: usize| pre.as_ref().map(|p| Matrix::from_columns(p, t, q_dim + kv_dim, col, d_head));
                heads.push(HeadTrace {
                    q: Matrix::from_columns(&qkv, t, width, q_col, d_head),
                    k: Matrix::from_columns(&qkv, t, width, k_col, d_head).into(),
                    v: Matrix::from_columns(&qkv, t, width, k_col + kv_dim, d_head).into(),
                    scores_read: Some(SquareMatrix::from_vec(t, raw)),
                    mask,
                    kept_weights: Some(SquareMatrix::from_vec(t, self.read_head(ctx, Stage::Weights, l, h).await?)),
                    softmax: None,
                    output: Matrix::from_columns(&head_out, t, q_dim, q_col, d_head),
                    q_pre_rope: pre_cols(q_col),
                    k_pre_rope: pre_cols(k_col).map(Into::into),
                    kv_head: llama.then_some(kv_head),
                });
            }
            layers.push(LayerTrace {
                attention: AttentionTrace { ln_1: Some(rows(self.read_rows(ctx, Stage::Ln1, l).await?, d)), heads },
                attn_out: rows(self.read_rows(ctx, Stage::AttnOut, l).await?, d),
                resid_mid: Some(rows(self.read_rows(ctx, Stage::ResidMid, l).await?, d)),
                ln_2: Some(rows(self.read_rows(ctx, Stage::Ln2, l).await?, d)),
                mlp_hidden: Some(rows(self.read_rows(ctx, Stage::MlpHidden, l).await?, c.n_inner)),
                mlp_out: rows(self.read_rows(ctx, Stage::MlpOut, l).await?, d),
                resid_post: Some(rows(self.read_rows(ctx, Stage::ResidPost, l).await?, d)),
            });
        }
        let logits = if all_logits {
            rows(self.read_all_logits(ctx).await?, c.vocab_size)
        } else {
            let mut last = self.begin_read_last_logits(ctx)?.finish(ctx).await?;
            last.truncate(c.vocab_size);
            Matrix::from_vec(1, c.vocab_size, last)
        };
        Ok(Trace {
            tokens,
            mask,
            embeddings: rows(self.read_rows(ctx, Stage::Embeddings, 0).await?, d),
            layers,
            ln_f: rows(self.read_rows(ctx, Stage::LnF, 0).await?, d),
            logits,
        })
    }
}
