//! `window.attnscope`: a small hook for end-to-end tests and the curious.
//!
//! - `state()` returns what the page shows now (no GPU readback).
//! - `snapshot()` resolves to `state()` plus `matrix`: the shown stage matrix
//!   of the selected layer and head, read back from the buffer (or trace) the
//!   heatmap is drawn from; `weights` too when the stage is the softmax.
//! - `loseGpu()` destroys the GPU device, as a lost GPU would, to check that
//!   the page carries on (CPU) and can go back to WebGPU.

use leptos::prelude::*;
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;

use super::app::{AppState, Phase};
use super::host::host;
use crate::engine::AttentionStage;

fn state_json(state: AppState) -> Value {
    let phase = match state.phase.get_untracked() {
        Phase::Loading => "loading".to_owned(),
        Phase::Ready => "ready".to_owned(),
        Phase::Failed(e) => format!("failed: {e}"),
    };
    let host = host();
    let view = state.view_untracked();
    json!({
        "phase": phase,
        "model": state.model_label.get_untracked(),
        "backend": state.backend.get_untracked(),
        "gpu": host.as_ref().is_some_and(|h| h.on_gpu()),
        "gpuError": state.gpu_error.get_untracked(),
        "text": state.text.get_untracked(),
        "tokens": state.tokens.get_untracked(),
        "gpuTokens": state.shown_tokens.get_untracked(),
        "inputError": state.input_error.get_untracked(),
        "layer": view.layer,
        "head": view.head,
        "stage": view.stage.key(),
        "mask": crate::share::mask_text(state.mask.get_untracked()),
        "runs": state.runs.get_untracked(),
        "renders": state.renders.get_untracked(),
        "bytesReadBack": host.as_ref().map_or(0, |h| h.bytes_read_back()),
        "locked": state.locked.get_untracked(),
        "hover": state.hover_value.get_untracked().map(|v| json!({
            "stage": v.view.stage.key(), "layer": v.view.layer, "head": v.view.head,
            "row": v.row, "col": v.col, "value": if v.value.is_finite() { json!(v.value) } else { Value::Null },
            "run": v.run,
        })),
        "legend": state.legend.get_untracked().map(|l| json!({ "lo": l.lo, "hi": l.hi, "stage": l.view.stage.key() })),
        "temperature": state.temperature.get_untracked(),
        "next": state.next.get_untracked().iter().map(|n| json!({ "id": n.id, "text": n.text, "prob": n.prob })).collect::<Vec<_>>(),
        "latencyMs": state.latency_ms.get_untracked(),
        "panel": state.panel.get_untracked().key(),
        "present": state.present.get_untracked(),
        "slide": untrack(|| super::present::current_slide(state)).map(|(_, s, _)| s.title()),
        "picked": untrack(|| super::present::picked(state)),
        "seed": state.seed.get_untracked(),
        "topK": state.top_k.get_untracked(),
        "topP": state.top_p.get_untracked(),
        "generated": state.generated.get_untracked().iter().map(|g| json!({ "id": g.token.id, "text": g.token.text, "prob": g.prob })).collect::<Vec<_>>(),
        "kvBytes": state.config.get_untracked().map(|c| crate::engine::cost::forward_cost(&c, state.shown_tokens.get_untracked()).kv_bytes),
    })
}

fn to_js(value: &Value) -> JsValue {
    js_sys::JSON::parse(&value.to_string()).unwrap_or(JsValue::NULL)
}

/// `state()` plus the shown stage matrix, read back from where the heatmap is
/// drawn from (−∞ as null), as rows.
async fn snapshot(state: AppState) -> Result<JsValue, JsValue> {
    let mut value = state_json(state);
    let host = host().ok_or_else(|| JsValue::from_str("the model is not loaded yet"))?;
    let view = state.view_untracked();
    let (rows, cols, flat) = match host.shown() {
        0 => (0, 0, Vec::new()), // empty text: nothing runs, nothing is shown
        _ => host.read_matrix(view).await.map_err(|e| JsValue::from_str(&e))?,
    };
    let matrix: Vec<Vec<Value>> = flat
        .chunks(cols.max(1))
        .take(rows)
        .map(|row| row.iter().map(|&v| if v.is_finite() { json!(v) } else { Value::Null }).collect())
        .collect();
    value["matrix"] = json!(matrix);
    if view.stage == AttentionStage::Weights {
        value["weights"] = json!(matrix);
    }
    value["weightsTokens"] = json!(rows);
    Ok(to_js(&value))
}

pub fn install(state: AppState) {
    let Some(window) = web_sys::window() else { return };
    let hook = js_sys::Object::new();
    let state_fn = Closure::<dyn Fn() -> JsValue>::new(move || to_js(&state_json(state)));
    let snapshot_fn =
        Closure::<dyn Fn() -> js_sys::Promise>::new(move || wasm_bindgen_futures::future_to_promise(snapshot(state)));
    let _ = js_sys::Reflect::set(&hook, &"state".into(), state_fn.as_ref());
    let _ = js_sys::Reflect::set(&hook, &"snapshot".into(), snapshot_fn.as_ref());
    let lose_fn = Closure::<dyn Fn()>::new(|| {
        if let Some(host) = host() {
            host.lose_gpu();
        }
    });
    let _ = js_sys::Reflect::set(&hook, &"loseGpu".into(), lose_fn.as_ref());
    lose_fn.forget();
    let _ = js_sys::Reflect::set(&window, &"attnscope".into(), &hook);
    // The hook lives as long as the page.
    state_fn.forget();
    snapshot_fn.forget();
}
