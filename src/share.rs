//! The page's state as a URL fragment, so any screen is a link: text, model,
//! layer, head, stage, mask, focused cell, sampling (temperature, top-k, top-p,
//! seed), theme, the panel and the presenter's slide. Parsing
//! never fails: a field that is missing or malformed is left unset (the page
//! keeps its default) and named in `rejected`, so the page can say so.
//! Plain Rust (no web APIs), tested natively; the UI wires it to the address.

use crate::engine::intervene::Replacement;
use crate::engine::{AttentionStage, Mask};
use crate::inspect::{format_heads, mode_key, parse_heads, parse_mode, PaintGrid, Template};
use crate::model::MAX_TEXT_BYTES;

/// The "which heads matter" part of a link. `None`: not in the link.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeadsLink {
    pub template: Option<Template>,
    /// The "attends to token X" template's token id.
    pub token_x: Option<u32>,
    pub paint: Option<PaintGrid>,
    pub ablated: Option<Vec<(usize, usize)>>,
    pub mode: Option<Replacement>,
    /// The second prompt a patch reads.
    pub source: Option<String>,
    /// The next token followed (a token id).
    pub chosen: Option<u32>,
    /// The two-prompt diff's prompt B.
    pub prompt_b: Option<String>,
    /// Whether the page shows the run with the ablated heads (`None`: yes, the default).
    pub show_ablated: Option<bool>,
}

/// Which part of the page a link (or an embedded widget) is about: the stage
/// heatmap by default, or the head view, the every-head grid, the residual
/// stream, the next-token list, the tokens or the two-prompt diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Panel {
    #[default]
    Stage,
    Heads,
    Grid,
    Residual,
    Next,
    Tokens,
    /// The two-prompt diff (the text against the link's `diff` prompt).
    Diff,
}

impl Panel {
    pub const ALL: [Panel; 7] =
        [Panel::Stage, Panel::Heads, Panel::Grid, Panel::Residual, Panel::Next, Panel::Tokens, Panel::Diff];

    pub fn key(self) -> &'static str {
        match self {
            Panel::Stage => "stage",
            Panel::Heads => "heads",
            Panel::Grid => "grid",
            Panel::Residual => "residual",
            Panel::Next => "next",
            Panel::Tokens => "tokens",
            Panel::Diff => "diff",
        }
    }

    /// A `view` value: a panel's key, or a stage (its key or a common name:
    /// `scores`, `softmax`, `output`), which shows that stage's heatmap.
    pub fn parse_view(value: &str) -> Option<(Panel, Option<AttentionStage>)> {
        if let Some(p) = Panel::ALL.into_iter().find(|p| p.key() == value) {
            return Some((p, None));
        }
        let stage = match value {
            "scores" => Some(AttentionStage::ScoresRaw),
            "softmax" | "attention" => Some(AttentionStage::Weights),
            "output" => Some(AttentionStage::Output),
            _ => AttentionStage::from_key(value),
        }?;
        Some((Panel::Stage, Some(stage)))
    }
}

/// What a link restores. `None`: not in the link.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShareState {
    pub text: Option<String>,
    pub model: Option<String>,
    pub layer: Option<usize>,
    pub head: Option<usize>,
    pub stage: Option<AttentionStage>,
    pub mask: Option<Mask>,
    /// The focused cell (row, column) and whether it is locked.
    pub focus: Option<(usize, usize)>,
    pub locked: bool,
    pub temperature: Option<f32>,
    pub theme: Option<String>,
    pub panel: Option<Panel>,
    /// Presenter mode, at this slide (see `crate::present`).
    pub present: Option<usize>,
    /// Sampling: the seed, top-k and top-p (temperature is `temperature`).
    pub seed: Option<u64>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    /// Which heads matter (`crate::inspect`): the head finder's template, its
    /// chosen token and painted pattern; the ablated heads and how they are
    /// replaced, the prompt patching reads; the next token the lens, the
    /// contributions and the ablation follow.
    pub heads: HeadsLink,
    /// Fields present but not understood, as `key=value`.
    pub rejected: Vec<String>,
}

pub use crate::escape::url_component as encode;

/// Decodes `%XX` escapes (and `+` as a space); invalid escapes stay as they
/// are; invalid UTF-8 becomes U+FFFD.
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A mask as links and messages name it: `causal`, `bidirectional`, `window:N`.
pub fn mask_text(mask: Mask) -> String {
    match mask {
        Mask::Causal => "causal".into(),
        Mask::Bidirectional => "bidirectional".into(),
        Mask::Window(w) => format!("window:{w}"),
    }
}

/// The largest layer/head/row index a link may name (far past any model we
/// load; the page clamps to the model it has).
const MAX_INDEX: usize = 4096;

/// `rejected` names at most this many fields, each value cut to
/// [`MAX_REJECTED_CHARS`]: a hostile link cannot make the list large.
pub const MAX_REJECTED: usize = 16;
pub const MAX_REJECTED_CHARS: usize = 64;

impl ShareState {
    /// Parses a fragment (with or without the leading `#`).
    pub fn parse(fragment: &str) -> Self {
        let mut s = ShareState::default();
        for pair in fragment.trim_start_matches('#').split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            // Bounded before decoding: each text byte is at most 3 link bytes (`%XX`).
            if matches!(key, "text" | "source" | "diff") && raw.len() > 3 * MAX_TEXT_BYTES {
                s.reject(key, &format!("({} bytes, more than the {MAX_TEXT_BYTES} a text may have)", raw.len()));
                continue;
            }
            let value = decode(raw);
            let index = |v: &str| v.parse::<usize>().ok().filter(|&i| i < MAX_INDEX);
            let ok = match key {
                "text" => {
                    let valid = value.len() <= MAX_TEXT_BYTES;
                    if valid {
                        s.text = Some(value.clone());
                    }
                    valid
                }
                "model" => {
                    // A preset, a hub repo or a URL, as `crate::model::source` reads it.
                    let valid = crate::model::source::ModelSource::parse(&value).is_ok_and(|m| m.key().is_some());
                    if valid {
                        s.model = Some(value.clone());
                    }
                    valid
                }
                "layer" => index(&value).map(|i| s.layer = Some(i)).is_some(),
                "head" => index(&value).map(|i| s.head = Some(i)).is_some(),
                "stage" => AttentionStage::from_key(&value).map(|st| s.stage = Some(st)).is_some(),
                "mask" => Mask::parse(&value).map(|m| s.mask = Some(m)).is_some(),
                "focus" | "lock" => {
                    let cell = value.split_once(',').and_then(|(r, c)| Some((index(r)?, index(c)?)));
                    cell.map(|cell| {
                        s.focus = Some(cell);
                        s.locked = key == "lock";
                    })
                    .is_some()
                }
                "t" => value
                    .parse::<f32>()
                    .ok()
                    .filter(|t| t.is_finite() && (0.0..=10.0).contains(t))
                    .map(|t| s.temperature = Some(t))
                    .is_some(),
                "view" => Panel::parse_view(&value)
                    .map(|(panel, stage)| {
                        s.panel = Some(panel);
                        if stage.is_some() {
                            s.stage = stage;
                        }
                    })
                    .is_some(),
                "present" => index(&value).map(|i| s.present = Some(i)).is_some(),
                "seed" => value.parse::<u64>().ok().map(|v| s.seed = Some(v)).is_some(),
                "topk" => value.parse::<usize>().ok().filter(|&k| k >= 1).map(|k| s.top_k = Some(k)).is_some(),
                "topp" => value
                    .parse::<f32>()
                    .ok()
                    .filter(|p| p.is_finite() && *p > 0.0 && *p <= 1.0)
                    .map(|p| s.top_p = Some(p))
                    .is_some(),
                "find" => Template::parse(&value).map(|t| s.heads.template = Some(t)).is_some(),
                "findtok" => value.parse::<u32>().ok().map(|id| s.heads.token_x = Some(id)).is_some(),
                "paint" => PaintGrid::from_hex(&value).map(|g| s.heads.paint = Some(g)).is_some(),
                "ablate" => parse_heads(&value).map(|h| s.heads.ablated = Some(h)).is_some(),
                "mode" => parse_mode(&value).map(|m| s.heads.mode = Some(m)).is_some(),
                "shows" => {
                    let show = match value.as_str() {
                        "ablated" => Some(true),
                        "clean" => Some(false),
                        _ => None,
                    };
                    s.heads.show_ablated = show.or(s.heads.show_ablated);
                    show.is_some()
                }
                "source" => {
                    let valid = value.len() <= MAX_TEXT_BYTES;
                    if valid {
                        s.heads.source = Some(value.clone());
                    }
                    valid
                }
                "diff" => {
                    let valid = value.len() <= MAX_TEXT_BYTES;
                    if valid {
                        s.heads.prompt_b = Some(value.clone());
                    }
                    valid
                }
                "next" => value.parse::<u32>().ok().map(|id| s.heads.chosen = Some(id)).is_some(),
                "theme" => {
                    let valid = matches!(value.as_str(), "auto" | "dark" | "light");
                    if valid {
                        s.theme = Some(value.clone());
                    }
                    valid
                }
                _ => false,
            };
            if !ok {
                s.reject(key, &value);
            }
        }
        s
    }

    /// Names a field that was not understood, within [`MAX_REJECTED`] entries
    /// of at most [`MAX_REJECTED_CHARS`] characters each.
    fn reject(&mut self, key: &str, value: &str) {
        if self.rejected.len() < MAX_REJECTED {
            let entry: String = format!("{key}={value}").chars().take(MAX_REJECTED_CHARS).collect();
            self.rejected.push(entry);
        }
    }

    /// The fragment (without `#`), fields in a fixed order.
    pub fn format(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.text {
            parts.push(format!("text={}", encode(t)));
        }
        if let Some(m) = &self.model {
            parts.push(format!("model={}", encode(m)));
        }
        if let Some(l) = self.layer {
            parts.push(format!("layer={l}"));
        }
        if let Some(h) = self.head {
            parts.push(format!("head={h}"));
        }
        if let Some(st) = self.stage {
            parts.push(format!("stage={}", st.key()));
        }
        if let Some(m) = self.mask {
            parts.push(format!("mask={}", encode(&mask_text(m))));
        }
        if let Some((r, c)) = self.focus {
            parts.push(format!("{}={r}%2C{c}", if self.locked { "lock" } else { "focus" }));
        }
        if let Some(t) = self.temperature {
            parts.push(format!("t={t}"));
        }
        if let Some(th) = &self.theme {
            parts.push(format!("theme={}", encode(th)));
        }
        if let Some(p) = self.panel.filter(|&p| p != Panel::Stage) {
            parts.push(format!("view={}", p.key()));
        }
        if let Some(i) = self.present {
            parts.push(format!("present={i}"));
        }
        if let Some(seed) = self.seed {
            parts.push(format!("seed={seed}"));
        }
        if let Some(k) = self.top_k {
            parts.push(format!("topk={k}"));
        }
        if let Some(p) = self.top_p {
            parts.push(format!("topp={p}"));
        }
        let h = &self.heads;
        if let Some(t) = h.template {
            parts.push(format!("find={}", t.key()));
        }
        if let Some(id) = h.token_x {
            parts.push(format!("findtok={id}"));
        }
        if let Some(g) = h.paint {
            parts.push(format!("paint={}", g.to_hex()));
        }
        if let Some(heads) = h.ablated.as_ref().filter(|a| !a.is_empty()) {
            parts.push(format!("ablate={}", encode(&format_heads(heads))));
        }
        if let Some(m) = h.mode {
            parts.push(format!("mode={}", mode_key(m)));
        }
        if let Some(show) = h.show_ablated {
            parts.push(format!("shows={}", if show { "ablated" } else { "clean" }));
        }
        if let Some(src) = h.source.as_ref().filter(|s| !s.is_empty()) {
            parts.push(format!("source={}", encode(src)));
        }
        if let Some(id) = h.chosen {
            parts.push(format!("next={id}"));
        }
        if let Some(b) = h.prompt_b.as_ref().filter(|b| !b.is_empty()) {
            parts.push(format!("diff={}", encode(b)));
        }
        parts.join("&")
    }
}

/// What the address's query string (`?embed=1&backend=cpu`) asks of the page,
/// apart from the fragment's state: how the page runs, not what it shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageQuery {
    /// `embed=1` (or a bare `embed`): one panel, sized to its frame.
    pub embed: bool,
    /// `backend=cpu`: the CPU fallback even where WebGPU works.
    pub cpu_backend: bool,
    /// `hub=<base>`: where hub models come from instead of huggingface.co
    /// (the e2e tests' own server; `crate::model::source`).
    pub hub: Option<String>,
}

impl PageQuery {
    /// Parses a query string (with or without the leading `?`); unknown fields are ignored.
    pub fn parse(search: &str) -> Self {
        let mut q = PageQuery::default();
        for pair in search.trim_start_matches('?').split('&') {
            match pair {
                "embed" | "embed=1" => q.embed = true,
                "backend=cpu" => q.cpu_backend = true,
                _ => {
                    if let Some(base) = pair.strip_prefix("hub=").map(decode) {
                        let web = base.starts_with("https://") || base.starts_with("http://");
                        q.hub = web.then_some(base);
                    }
                }
            }
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_names_a_hub_repo_or_a_url_as_its_model() {
        for model in ["gpt2", "org/name@v2", "https://example.org/m/tiny", "org/repo/m.Q8_0.gguf"] {
            let s = ShareState { model: Some(model.into()), ..ShareState::default() };
            assert_eq!(ShareState::parse(&format!("#{}", s.format())).model.as_deref(), Some(model), "{model}");
        }
        let bad = ShareState::parse("#model=javascript%3Aalert(1)");
        assert_eq!((bad.model, bad.rejected.len()), (None, 1));
    }

    #[test]
    fn the_query_names_a_hub_base_only_over_http() {
        assert_eq!(
            PageQuery::parse("?embed&hub=http%3A%2F%2F127.0.0.1%3A9").hub.as_deref(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(PageQuery::parse("?hub=javascript:x").hub, None);
        assert_eq!(PageQuery::parse("").hub, None);
    }

    #[test]
    fn every_field_round_trips() {
        let s = ShareState {
            text: Some("Tom & Jerry = \"<b>friends</b>\" #1, 100%\nnaïve 日本".into()),
            model: Some("default".into()),
            layer: Some(2),
            head: Some(3),
            stage: Some(AttentionStage::ScoresScaled),
            mask: Some(Mask::Window(3)),
            focus: Some((5, 1)),
            locked: true,
            temperature: Some(0.75),
            theme: Some("dark".into()),
            panel: Some(Panel::Heads),
            present: Some(7),
            seed: Some(42),
            top_k: Some(40),
            top_p: Some(0.9),
            heads: HeadsLink::default(),
            rejected: Vec::new(),
        };
        let link = s.format();
        assert!(!link.contains(['<', '>', '"', '#', ' ', '\n']), "{link}");
        assert_eq!(ShareState::parse(&format!("#{link}")), s);
    }

    #[test]
    fn bad_fields_are_named_and_left_unset() {
        let s = ShareState::parse(
            "#layer=-1&head=999999&stage=softmax&mask=window:0&t=nan&theme=<x>&model=../x&zoom=2&text=ok&seed=-1&topk=0\
             &topp=1.5",
        );
        assert_eq!(s.text.as_deref(), Some("ok"));
        assert_eq!(
            (s.layer, s.head, s.stage, s.mask, s.temperature, s.theme.as_deref(), s.model.as_deref()),
            (None, None, None, None, None, None, None)
        );
        assert_eq!((s.seed, s.top_k, s.top_p), (None, None, None));
        assert_eq!(s.rejected.len(), 11, "{:?}", s.rejected);
    }

    #[test]
    fn view_names_a_panel_or_a_stage() {
        let s = ShareState::parse("view=softmax&layer=1");
        assert_eq!((s.panel, s.stage, s.layer), (Some(Panel::Stage), Some(AttentionStage::Weights), Some(1)));
        assert_eq!(ShareState::parse("view=grid").panel, Some(Panel::Grid));
        assert_eq!(ShareState::parse("view=scaled").stage, Some(AttentionStage::ScoresScaled));
        let bad = ShareState::parse("view=%3Cscript%3E");
        assert_eq!((bad.panel, bad.rejected.len()), (None, 1));
        for p in Panel::ALL {
            assert_eq!(Panel::parse_view(p.key()), Some((p, None)));
        }
    }

    /// A 600 KB text took seconds to decode before the page said it was too long.
    #[test]
    fn a_text_longer_than_the_bound_is_rejected_before_decoding() {
        let ok = "a".repeat(MAX_TEXT_BYTES);
        assert_eq!(ShareState::parse(&format!("text={ok}")).text.as_deref(), Some(ok.as_str()));
        for long in ["a".repeat(MAX_TEXT_BYTES + 1), "%41".repeat(MAX_TEXT_BYTES + 1), "a".repeat(600_000)] {
            let s = ShareState::parse(&format!("text={long}&layer=1"));
            assert_eq!((s.text, s.layer), (None, Some(1)));
            assert_eq!(s.rejected.len(), 1);
            assert!(s.rejected[0].starts_with("text=") && s.rejected[0].chars().count() <= MAX_REJECTED_CHARS);
        }
    }

    #[test]
    fn the_rejected_list_is_bounded() {
        let s = ShareState::parse(&"x=1&".repeat(100_000));
        assert_eq!(s.rejected.len(), MAX_REJECTED);
    }

    #[test]
    fn decode_tolerates_broken_escapes() {
        assert_eq!(decode("a%2"), "a%2");
        assert_eq!(decode("%zz+b"), "%zz b");
        assert_eq!(decode("%E2%9C%93"), "✓");
        assert_eq!(decode("%FF"), "\u{FFFD}");
    }

    #[test]
    fn the_query_string_asks_for_embed_mode_and_the_cpu_backend() {
        assert_eq!(PageQuery::parse(""), PageQuery::default());
        assert_eq!(PageQuery::parse("?embed=1"), PageQuery { embed: true, cpu_backend: false, hub: None });
        assert_eq!(PageQuery::parse("embed&backend=cpu"), PageQuery { embed: true, cpu_backend: true, hub: None });
        assert_eq!(PageQuery::parse("?embed=0&backend=gpu&x=1"), PageQuery::default());
        assert_eq!(PageQuery::parse("?foo=embed=1"), PageQuery::default(), "only whole fields count");
    }

    #[test]
    fn the_heads_fields_round_trip() {
        let s = ShareState {
            text: Some("a b a".into()),
            heads: HeadsLink {
                template: Some(Template::Painted),
                token_x: Some(42),
                paint: Some(PaintGrid::default()),
                ablated: Some(vec![(0, 1), (1, 3)]),
                mode: Some(Replacement::Patch),
                source: Some("a c a & b".into()),
                chosen: Some(7),
                prompt_b: Some("b a b".into()),
                show_ablated: Some(false),
            },
            ..ShareState::default()
        };
        let back = ShareState::parse(&s.format());
        assert_eq!(back, s);
        assert!(back.rejected.is_empty());
        assert!(s.format().contains("shows=clean"));
        let shown = ShareState { heads: HeadsLink { show_ablated: Some(true), ..HeadsLink::default() }, ..s };
        assert_eq!(ShareState::parse(&shown.format()), shown);
    }

    #[test]
    fn bad_heads_fields_are_rejected_and_the_rest_kept() {
        let s =
            ShareState::parse("text=hi&find=wobble&findtok=-1&paint=zz&ablate=1.x&mode=half&next=&layer=1&shows=both");
        assert_eq!(s.heads, HeadsLink::default());
        assert_eq!(s.text.as_deref(), Some("hi"));
        assert_eq!(s.layer, Some(1));
        assert_eq!(s.rejected.len(), 7);
    }
}
