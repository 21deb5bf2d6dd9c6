//! "Which heads matter here?" as plain data the page and its links share:
//! the head finder's templates, the small grid a pattern is painted on, the
//! ranking of heads by a score, and the set of heads ablated (with how).
//! Plain Rust (no web APIs), tested natively; `ui` shows and edits it and
//! `crate::share` puts it in links.

use crate::engine::head_finder::{PaintedPattern, TemplateScores};
use crate::engine::intervene::Replacement;
use crate::engine::lens::DirectContributions;
use crate::engine::rank::{self, Direction};

/// What a head's attention is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Template {
    #[default]
    PreviousToken,
    Induction,
    FirstToken,
    SelfToken,
    Broad,
    /// Attends to a chosen token (its id is kept beside the template).
    ToToken,
    /// Matches the pattern painted on the grid.
    Painted,
}

impl Template {
    pub const ALL: [Template; 7] = [
        Template::PreviousToken,
        Template::Induction,
        Template::FirstToken,
        Template::SelfToken,
        Template::Broad,
        Template::ToToken,
        Template::Painted,
    ];

    /// The name a link uses.
    pub fn key(self) -> &'static str {
        match self {
            Template::PreviousToken => "previous",
            Template::Induction => "induction",
            Template::FirstToken => "first",
            Template::SelfToken => "self",
            Template::Broad => "broad",
            Template::ToToken => "token",
            Template::Painted => "painted",
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        Template::ALL.into_iter().find(|t| t.key() == key)
    }

    /// The name on the page.
    pub fn label(self) -> &'static str {
        match self {
            Template::PreviousToken => "Previous token",
            Template::Induction => "Induction",
            Template::FirstToken => "First-token sink",
            Template::SelfToken => "Self",
            Template::Broad => "Broad (entropy)",
            Template::ToToken => "Attends to a token",
            Template::Painted => "Painted pattern",
        }
    }

    /// What the score measures, in a line.
    pub fn describe(self) -> &'static str {
        match self {
            Template::PreviousToken => "mean weight each token gives the token just before it",
            Template::Induction => {
                "mean weight a repeated token gives the token that followed its earlier copy (A B … A → B)"
            }
            Template::FirstToken => "mean weight on the first token (an attention sink)",
            Template::SelfToken => "mean weight each token gives itself",
            Template::Broad => "entropy of each row over ln(visible keys): 1 for uniform attention, 0 for one key",
            Template::ToToken => "mean weight on the chosen token, over the queries that can see it",
            Template::Painted => {
                "overlap Σ min(a, p) of each row with the painted row (normalised), stretched over the text"
            }
        }
    }

    /// This template's score of one head (`None` where it is undefined: no
    /// repeated token for induction, no token chosen or seen for "to token").
    /// The painted template is scored apart (`painted_scores`).
    pub fn pick(self, s: &TemplateScores) -> Option<f64> {
        match self {
            Template::PreviousToken => Some(s.previous_token),
            Template::Induction => s.induction,
            Template::FirstToken => Some(s.first_token),
            Template::SelfToken => Some(s.self_token),
            Template::Broad => Some(s.entropy),
            Template::ToToken => s.to_token,
            Template::Painted => None,
        }
    }
}

/// The side of the grid a pattern is painted on.
pub const PAINT_SIDE: usize = 8;

/// A pattern painted on a [`PAINT_SIDE`]² grid of on/off cells (row =
/// query, column = key); in links as 16 hex digits, row by row, bit 7 of
/// each row's byte the leftmost cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaintGrid {
    rows: [u8; PAINT_SIDE],
}

impl Default for PaintGrid {
    /// The previous-token diagonal: a pattern to start from.
    fn default() -> Self {
        let mut grid = PaintGrid { rows: [0; PAINT_SIDE] };
        for r in 1..PAINT_SIDE {
            grid.set(r, r - 1, true);
        }
        grid.set(0, 0, true);
        grid
    }
}

impl PaintGrid {
    pub fn empty() -> Self {
        PaintGrid { rows: [0; PAINT_SIDE] }
    }

    pub fn get(&self, row: usize, col: usize) -> bool {
        row < PAINT_SIDE && col < PAINT_SIDE && self.rows[row] & (0x80 >> col) != 0
    }

    pub fn set(&mut self, row: usize, col: usize, on: bool) {
        if row < PAINT_SIDE && col < PAINT_SIDE {
            if on {
                self.rows[row] |= 0x80 >> col;
            } else {
                self.rows[row] &= !(0x80 >> col);
            }
        }
    }

    pub fn toggle(&mut self, row: usize, col: usize) {
        let on = self.get(row, col);
        self.set(row, col, !on);
    }

    /// How many cells are painted.
    pub fn count(&self) -> usize {
        self.rows.iter().map(|r| r.count_ones() as usize).sum()
    }

    pub fn to_hex(&self) -> String {
        self.rows.iter().map(|r| format!("{r:02x}")).collect()
    }

    /// Parses [`PaintGrid::to_hex`]'s form: exactly 16 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 2 * PAINT_SIDE || !text.is_ascii() {
            return None;
        }
        let mut rows = [0u8; PAINT_SIDE];
        for (i, row) in rows.iter_mut().enumerate() {
            *row = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(PaintGrid { rows })
    }

    /// The engine's pattern: 1 where painted, 0 elsewhere.
    pub fn pattern(&self) -> PaintedPattern {
        let cells = (0..PAINT_SIDE * PAINT_SIDE)
            .map(|i| if self.get(i / PAINT_SIDE, i % PAINT_SIDE) { 1.0 } else { 0.0 })
            .collect();
        // PAINT_SIDE is within MAX_PAINTED and the cells are 0 or 1: always valid.
        PaintedPattern::new(PAINT_SIDE, cells).unwrap_or_else(|_| unreachable!("an 8 × 8 grid of 0/1 is a pattern"))
    }
}

/// A head and its score, for the ranked list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankedHead {
    pub layer: usize,
    pub head: usize,
    pub score: f64,
}

/// The heads with a score (index `layer · n_head + head`), highest first
/// (ties: lower layer, then lower head), at most `k`; heads without a score
/// or with a non-finite one are left out.
pub fn rank(scores: &[Option<f64>], n_head: usize, k: usize) -> Vec<RankedHead> {
    if n_head == 0 {
        return Vec::new();
    }
    let ranked: Vec<RankedHead> = scores
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            s.filter(|v| v.is_finite()).map(|score| RankedHead { layer: i / n_head, head: i % n_head, score })
        })
        .collect();
    // (Built in (layer, head) order: equal scores keep it.)
    let mut ranked = rank::sorted(ranked, |h| h.score, Direction::Descending);
    ranked.truncate(k);
    ranked
}

/// How ablated heads are replaced, as links name it.
pub fn mode_key(mode: Replacement) -> &'static str {
    match mode {
        Replacement::Zero => "zero",
        Replacement::Mean => "mean",
        Replacement::Patch => "patch",
    }
}

pub fn parse_mode(key: &str) -> Option<Replacement> {
    match key {
        "zero" => Some(Replacement::Zero),
        "mean" => Some(Replacement::Mean),
        "patch" => Some(Replacement::Patch),
        _ => None,
    }
}

/// The most heads a link may name as ablated.
pub const MAX_ABLATED: usize = 256;
/// The largest layer or head index a link may name (the page checks it against the model).
const MAX_HEAD_INDEX: usize = 4096;

/// Heads as links write them: `L.H` joined by `,` (layer and head from 0).
pub fn format_heads(heads: &[(usize, usize)]) -> String {
    heads.iter().map(|(l, h)| format!("{l}.{h}")).collect::<Vec<_>>().join(",")
}

/// Heads as the page names them: "L1 H0, L1 H2".
pub fn heads_label(heads: &[(usize, usize)]) -> String {
    heads.iter().map(|(l, h)| format!("L{l} H{h}")).collect::<Vec<_>>().join(", ")
}

/// Parses [`format_heads`]'s form into sorted distinct heads; `None` when
/// any entry is malformed, out of bounds, or there are too many.
pub fn parse_heads(text: &str) -> Option<Vec<(usize, usize)>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    let mut heads = Vec::new();
    for part in text.split(',') {
        let (l, h) = part.split_once('.')?;
        let (l, h) = (l.parse::<usize>().ok()?, h.parse::<usize>().ok()?);
        if l >= MAX_HEAD_INDEX || h >= MAX_HEAD_INDEX {
            return None;
        }
        heads.push((l, h));
        if heads.len() > MAX_ABLATED {
            return None;
        }
    }
    heads.sort_unstable();
    heads.dedup();
    Some(heads)
}

/// Adds `head` to the sorted set, or removes it if present.
pub fn toggle_head(heads: &mut Vec<(usize, usize)>, head: (usize, usize)) {
    match heads.binary_search(&head) {
        Ok(i) => {
            heads.remove(i);
        }
        Err(i) => heads.insert(i, head),
    }
}

/// Every term of direct contributions with its name (`L1 H3`, `L0 MLP`,
/// `L0 attention bias`, the embeddings, the final norm's shift), largest
/// |value| first: the terms that sum to the logit.
pub fn sorted_terms(c: &DirectContributions) -> Vec<(String, f32)> {
    let mut terms: Vec<(String, f32)> = Vec::new();
    for (l, heads) in c.heads.iter().enumerate() {
        terms.extend(heads.iter().enumerate().map(|(h, &v)| (format!("L{l} H{h}"), v)));
        if let Some(&mlp) = c.mlp.get(l) {
            terms.push((format!("L{l} MLP"), mlp));
        }
        if let Some(&bias) = c.attn_bias.get(l) {
            terms.push((format!("L{l} attention bias"), bias));
        }
    }
    terms.push(("token embedding".into(), c.token_embedding));
    if let Some(p) = c.position_embedding {
        terms.push(("position embedding".into(), p));
    }
    terms.push(("final norm's shift".into(), c.norm_shift));
    rank::sorted(terms, |t| t.1.abs() as f64, Direction::Descending)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_terms_hold_every_term_largest_first_and_sum_to_the_total() {
        let c = DirectContributions {
            token: 3,
            position: 1,
            logit: 0.0,
            norm_scale: 1.0,
            heads: vec![vec![0.5, -2.0], vec![0.25, 1.0]],
            attn_bias: vec![0.1, -0.1],
            mlp: vec![-0.75, 3.0],
            token_embedding: 0.2,
            position_embedding: Some(-0.05),
            norm_shift: 0.01,
        };
        let terms = sorted_terms(&c);
        assert_eq!(terms.len(), 4 + 2 + 2 + 3);
        assert_eq!(terms[0], ("L1 MLP".to_owned(), 3.0));
        assert_eq!(terms[1], ("L0 H1".to_owned(), -2.0));
        assert!(terms.windows(2).all(|w| w[0].1.abs() >= w[1].1.abs()));
        let sum: f32 = terms.iter().map(|t| t.1).sum();
        assert!((sum - c.total()).abs() < 1e-6);
    }

    #[test]
    fn templates_round_trip_through_their_keys() {
        for t in Template::ALL {
            assert_eq!(Template::parse(t.key()), Some(t));
        }
        assert_eq!(Template::parse("nope"), None);
    }

    #[test]
    fn painting_sets_toggles_and_round_trips_through_hex() {
        let mut grid = PaintGrid::empty();
        grid.set(0, 0, true);
        grid.toggle(7, 7);
        grid.toggle(3, 5);
        grid.toggle(3, 5);
        assert!(grid.get(0, 0) && grid.get(7, 7) && !grid.get(3, 5));
        assert_eq!(grid.count(), 2);
        assert_eq!(grid.to_hex(), "8000000000000001");
        assert_eq!(PaintGrid::from_hex(&grid.to_hex()), Some(grid));
        // Outside the grid: ignored, never a panic.
        grid.set(8, 0, true);
        assert!(!grid.get(8, 0));
    }

    #[test]
    fn bad_paint_hex_is_refused() {
        for bad in ["", "80", "800000000000000g", "80000000000000001", "é0000000000000000"] {
            assert_eq!(PaintGrid::from_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_default_grid_is_the_previous_token_diagonal() {
        let grid = PaintGrid::default();
        assert!(grid.get(1, 0) && grid.get(7, 6) && grid.get(0, 0) && !grid.get(3, 3));
        let p = grid.pattern();
        assert_eq!(p.side(), PAINT_SIDE);
        assert_eq!(p.cells().iter().filter(|&&c| c == 1.0).count(), grid.count());
    }

    #[test]
    fn rank_orders_by_score_then_position_and_skips_missing() {
        let scores = [Some(0.2), None, Some(0.9), Some(f64::NAN), Some(0.9), Some(0.5)];
        let ranked = rank(&scores, 2, 3);
        let heads: Vec<_> = ranked.iter().map(|r| (r.layer, r.head)).collect();
        assert_eq!(heads, vec![(1, 0), (2, 0), (2, 1)]);
        assert!(rank(&scores, 0, 3).is_empty());
    }

    #[test]
    fn heads_parse_sorted_and_distinct_and_refuse_garbage() {
        assert_eq!(parse_heads("1.3,0.2,1.3"), Some(vec![(0, 2), (1, 3)]));
        assert_eq!(parse_heads(""), Some(vec![]));
        for bad in ["1", "1.x", "1.2,", "-1.0", "5000.0", "1.2.3"] {
            assert_eq!(parse_heads(bad), None, "{bad}");
        }
        let many = (0..300).map(|i| format!("0.{i}")).collect::<Vec<_>>().join(",");
        assert_eq!(parse_heads(&many), None);
        assert_eq!(format_heads(&[(0, 2), (1, 3)]), "0.2,1.3");
        assert_eq!(heads_label(&[(0, 2), (1, 3)]), "L0 H2, L1 H3");
    }

    #[test]
    fn toggling_a_head_keeps_the_set_sorted() {
        let mut heads = vec![(0, 1), (1, 0)];
        toggle_head(&mut heads, (0, 3));
        assert_eq!(heads, vec![(0, 1), (0, 3), (1, 0)]);
        toggle_head(&mut heads, (0, 1));
        assert_eq!(heads, vec![(0, 3), (1, 0)]);
    }

    #[test]
    fn modes_round_trip() {
        for m in [Replacement::Zero, Replacement::Mean, Replacement::Patch] {
            assert_eq!(parse_mode(mode_key(m)), Some(m));
        }
        assert_eq!(parse_mode("half"), None);
    }
}
