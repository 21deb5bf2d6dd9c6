//! `window.attnscope`: a small hook for end-to-end tests and the curious.
//!
//! - `state()` returns what the page shows now (no GPU readback), the size
//!   of the WebAssembly memory (`wasmMemoryBytes`), and whether the GPU holds
//!   one block's T×T matrices at a time (`oneBlock`), and which build of the
//!   wasm runs (`cpuSimd`: "simd128" or "simd128 + relaxed-simd").
//! - `snapshot()` resolves to `state()` plus `matrix`: the shown stage matrix
//!   of the selected layer and head, read back from the buffer (or trace) the
//!   heatmap is drawn from; `weights` too when the stage is the softmax.
//! - `loseGpu()` destroys the GPU device, as a lost GPU would, to check that
//!   the page carries on (CPU) and can go back to WebGPU.
//! - `setLimits({ maxBinding, gpuMemory, wasmMemory })` (bytes; any left out
//!   keeps WebGPU's default / unknown / 4 GiB) lowers what a model plan is
//!   checked against, so a test can see a model refused before any weight
//!   byte is fetched; `setLimits(null)` goes back to the device's own.

use leptos::prelude::*;
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;

use crate::engine::AttentionStage;
use crate::ui::backend::Backend;
use crate::ui::state::{PageState, Phase};

fn state_json(state: PageState, backend: Backend) -> Value {
    let (s, status, outputs) = (state.selection, state.status, state.outputs);
    let phase = match status.phase.get_untracked() {
        Phase::Loading => "loading".to_owned(),
        Phase::Ready => "ready".to_owned(),
        Phase::Failed(e) => format!("failed: {e}"),
    };
    let view = state.view_untracked();
    let mut out = json!({
        "phase": phase,
        "model": status.model_label.get_untracked(),
        "modelKey": status.model_key.get_untracked(),
        "nLayer": status.config.get_untracked().map(|c| c.n_layer),
        "nHead": status.config.get_untracked().map(|c| c.n_head),
        "backend": status.backend_label.get_untracked(),
        "gpu": backend.on_gpu(),
        "gpuError": status.gpu_error.get_untracked(),
        "text": s.text.get_untracked(),
        "tokens": outputs.tokens.get_untracked(),
        "gpuTokens": outputs.shown_tokens.get_untracked(),
        "inputError": status.input_error.get_untracked(),
        "layer": view.layer,
        "head": view.head,
        "stage": view.stage.key(),
        "mask": crate::share::mask_text(s.mask.get_untracked()),
        "runs": outputs.runs.get_untracked(),
        "renders": state.telemetry.renders.get_untracked(),
        "bytesReadBack": backend.bytes_read_back(),
        "oneBlock": backend.one_block(),
        "locked": state.focus.locked.get_untracked(),
        "hover": outputs.hover_value.get_untracked().map(|v| json!({
            "stage": v.view.stage.key(), "layer": v.view.layer, "head": v.view.head,
            "row": v.row, "col": v.col, "value": if v.value.is_finite() { json!(v.value) } else { Value::Null },
            "run": v.run,
        })),
        "legend": outputs.legend.get_untracked().map(|l| json!({ "lo": l.lo, "hi": l.hi, "stage": l.view.stage.key() })),
        "temperature": s.temperature.get_untracked(),
        "next": outputs.next.get_untracked().iter().map(|n| json!({ "id": n.id, "text": n.text, "prob": n.prob })).collect::<Vec<_>>(),
        "latencyMs": state.telemetry.latency_ms.get_untracked(),
        "keystroke": state.telemetry.keystroke.get_untracked(),
        "yields": backend.yields(),
        "panel": s.panel.get_untracked().key(),
        "present": s.present.get_untracked(),
        "slide": untrack(|| super::present::current_slide(state)).map(|(_, s, _)| s.title(state.selection.head.get())),
        "picked": untrack(|| super::present::picked(state)),
        "seed": s.seed.get_untracked(),
        "topK": s.top_k.get_untracked(),
        "topP": s.top_p.get_untracked(),
        "generated": state.generation.steps.get_untracked().iter().map(|g| json!({ "id": g.token.id, "text": g.token.text, "prob": g.prob })).collect::<Vec<_>>(),
        "kvBytes": status.config.get_untracked().map(|c| crate::engine::cost::forward_cost(&c, outputs.shown_tokens.get_untracked()).kv_bytes),
        "wasmMemoryBytes": wasm_memory_bytes(),
    });
    // (Set apart: one `json!` of every key passes the macro's recursion limit.)
    if let Some(o) = out.as_object_mut() {
        o.insert("cpuWeightsKept".into(), json!(backend.cpu_weights_kept()));
        o.insert("cpuSimd".into(), json!(crate::engine::kernels::WASM_SIMD));
        o.insert(
            "cpuTraceBudget".into(),
            json!(backend.host().map(|h| crate::ui::backend::cpu_trace_budget(&h.model))),
        );
    }
    out
}

/// The size of this WebAssembly instance's memory (it only ever grows): the
/// model tests read it before and after opening a model.
fn wasm_memory_bytes() -> u64 {
    core::arch::wasm32::memory_size(0) as u64 * 65_536
}

fn to_js(value: &Value) -> JsValue {
    js_sys::JSON::parse(&value.to_string()).unwrap_or(JsValue::NULL)
}

/// `state()` plus the shown stage matrix, read back from where the heatmap is
/// drawn from (−∞ as null), as rows of the f32 values themselves.
async fn snapshot(state: PageState, backend: Backend) -> Result<JsValue, JsValue> {
    let value = to_js(&state_json(state, backend));
    if backend.host().is_none() {
        return Err(JsValue::from_str("the model is not loaded yet"));
    }
    let view = state.view_untracked();
    let matrix = match backend.shown() {
        0 => js_sys::Array::new(), // empty text: nothing runs, nothing is shown
        _ => rows_js(&backend.read_matrix(view).await.map_err(|e| JsValue::from_str(&e.to_string()))?),
    };
    let set = |name: &str, v: &JsValue| js_sys::Reflect::set(&value, &name.into(), v);
    set("weightsTokens", &matrix.length().into())?;
    if view.stage == AttentionStage::Weights {
        set("weights", &matrix)?;
    }
    set("matrix", &matrix)?;
    Ok(value)
}

/// `m` as an array of rows, −∞ (a masked score) as null. A row goes over
/// as one Float32Array: a 2,000-token map is 4 million values, which a JSON
/// text of them took ~50 s to build, parse and hand to a test.
fn rows_js(m: &crate::engine::Matrix) -> js_sys::Array {
    (0..m.rows)
        .map(|r| {
            let row = m.row(r);
            let array = js_sys::Array::from(&js_sys::Float32Array::from(row));
            for (i, v) in row.iter().enumerate() {
                if !v.is_finite() {
                    array.set(i as u32, JsValue::NULL);
                }
            }
            JsValue::from(array)
        })
        .collect()
}

/// Installs `window.attnscope` for the page's state and backend.
pub fn install(state: PageState, backend: Backend) {
    let Some(window) = web_sys::window() else { return };
    let hook = js_sys::Object::new();
    let state_fn = Closure::<dyn Fn() -> JsValue>::new(move || to_js(&state_json(state, backend)));
    let snapshot_fn = Closure::<dyn Fn() -> js_sys::Promise>::new(move || {
        wasm_bindgen_futures::future_to_promise(snapshot(state, backend))
    });
    let lose_fn = Closure::<dyn Fn()>::new(move || backend.lose_gpu());
    let limits_fn = Closure::<dyn Fn(JsValue)>::new(|value: JsValue| {
        let get = |name: &str| js_sys::Reflect::get(&value, &name.into()).ok().and_then(|v| v.as_f64());
        let limits = (!value.is_null() && !value.is_undefined()).then(|| {
            let d = crate::model::plan::Limits::default();
            crate::model::plan::Limits {
                max_binding: get("maxBinding").map_or(d.max_binding, |v| v.max(0.0) as u64),
                gpu_memory: get("gpuMemory").map(|v| v.max(0.0) as u64),
                wasm_memory: get("wasmMemory").map_or(d.wasm_memory, |v| v.max(0.0) as u64),
            }
        });
        super::models::set_limits(limits);
    });
    let _ = js_sys::Reflect::set(&hook, &"state".into(), state_fn.as_ref());
    let _ = js_sys::Reflect::set(&hook, &"snapshot".into(), snapshot_fn.as_ref());
    let _ = js_sys::Reflect::set(&hook, &"loseGpu".into(), lose_fn.as_ref());
    let _ = js_sys::Reflect::set(&hook, &"setLimits".into(), limits_fn.as_ref());
    let _ = js_sys::Reflect::set(&window, &"attnscope".into(), &hook);
    // Benchmarks wait for each keystroke's breakdown by setting
    // `attnscope.onKeystroke(k)` rather than polling `state()`, whose JSON
    // would land inside the keystrokes they measure.
    let listener = hook.clone();
    Effect::new(move |_| {
        let Some(keystroke) = state.telemetry.keystroke.get() else { return };
        let Ok(f) = js_sys::Reflect::get(&listener, &"onKeystroke".into()) else { return };
        if let (Some(f), Ok(value)) = (f.dyn_ref::<js_sys::Function>(), serde_json::to_value(keystroke)) {
            let _ = f.call1(&JsValue::NULL, &to_js(&value));
        }
    });
    // The hook lives as long as the page.
    state_fn.forget();
    snapshot_fn.forget();
    lose_fn.forget();
    limits_fn.forget();
}
