//! `window.attnscope`: a small hook for end-to-end tests and the curious.
//!
//! - `state()` returns what the page shows now (no GPU readback).
//! - `snapshot()` resolves to `state()` plus `weights`: the displayed head's
//!   T×T softmax weights read back from the GPU buffer the heatmap is drawn from.

use leptos::prelude::*;
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;

use super::app::{AppState, Phase};
use super::host::host;

fn state_json(state: AppState) -> Value {
    let phase = match state.phase.get_untracked() {
        Phase::Loading => "loading".to_owned(),
        Phase::Ready => "ready".to_owned(),
        Phase::Failed(e) => format!("failed: {e}"),
    };
    let bytes_read_back = host().and_then(|h| h.gpu.as_ref().ok().map(|g| g.ctx.bytes_read_back())).unwrap_or(0);
    json!({
        "phase": phase,
        "model": state.model_label.get_untracked(),
        "backend": state.backend.get_untracked(),
        "gpu": state.gpu_error.get_untracked().is_none() && host().is_some(),
        "gpuError": state.gpu_error.get_untracked(),
        "text": state.text.get_untracked(),
        "tokens": state.tokens.get_untracked(),
        "gpuTokens": state.gpu_tokens.get_untracked(),
        "inputError": state.input_error.get_untracked(),
        "layer": 0,
        "head": state.head.get_untracked(),
        "mask": "causal",
        "runs": state.runs.get_untracked(),
        "renders": state.renders.get_untracked(),
        "bytesReadBack": bytes_read_back,
        "hover": state.hover_value.get_untracked().map(|v| json!({
            "head": v.head, "row": v.row, "col": v.col, "value": v.value
        })),
    })
}

fn to_js(value: &Value) -> JsValue {
    js_sys::JSON::parse(&value.to_string()).unwrap_or(JsValue::NULL)
}

async fn snapshot(state: AppState) -> Result<JsValue, JsValue> {
    let mut value = state_json(state);
    let host = host().ok_or_else(|| JsValue::from_str("the model is not loaded yet"))?;
    let gpu = host.gpu.as_ref().map_err(|e| JsValue::from_str(e))?;
    let head = state.head.get_untracked();
    let (t, flat) = match gpu.tokens() {
        0 => (0, Vec::new()), // empty text: nothing runs, nothing is shown
        _ => {
            let read = gpu.begin_read_head(head).map_err(|e| JsValue::from_str(&e))?;
            let t = read.t;
            (t, read.finish(&gpu.ctx).await.map_err(|e| JsValue::from_str(&e.to_string()))?)
        }
    };
    let rows: Vec<&[f32]> = flat.chunks(t.max(1)).collect();
    value["weights"] = json!(rows);
    value["weightsTokens"] = json!(t);
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
    let _ = js_sys::Reflect::set(&window, &"attnscope".into(), &hook);
    // The hook lives as long as the page.
    state_fn.forget();
    snapshot_fn.forget();
}
