//! A small SVG line chart on logarithmic (or, for y, linear) axes, drawn as
//! SVG elements from numbers (`render::plot` does the geometry and places
//! the labels so they never collide). It is drawn at its box's own pixel
//! width, so its type stays at the page's size on a phone. Every point's
//! value shows next to it on hover, on a tap, and from the keyboard (focus
//! the chart, then ←/→ along a line and ↑/↓ between lines).

use leptos::prelude::*;

use crate::render::plot::{path, short, stack_labels, LinearAxis, LogAxis};
use crate::ui::web::width_watch::WidthWatch;

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub colour: &'static str,
    pub points: Vec<(f64, f64)>,
    /// How a value reads next to its number (e.g. "FLOPs").
    pub unit: &'static str,
}

/// A vertical marker (e.g. the current T).
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub x: f64,
    pub label: String,
}

/// How the y values read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum YFormat {
    /// 1.2k, 3.4M…
    #[default]
    Short,
    /// A fraction shown as a percentage.
    Percent,
}

const H: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 36.0;
/// The narrowest and widest the chart draws itself, in CSS pixels.
const MIN_W: f64 = 280.0;
const MAX_W: f64 = 720.0;
/// Approximate advance of one character of the chart's 12 px type, for label placement.
const CHAR_W: f64 = 6.6;
const LABEL_ROW: f64 = 14.0;

fn format_y(v: f64, format: YFormat, fine: bool) -> String {
    match format {
        YFormat::Percent if fine => format!("{:.1} %", 100.0 * v),
        YFormat::Percent => format!("{:.0} %", 100.0 * v),
        YFormat::Short => short(v),
    }
}

#[component]
pub fn LogChart(
    #[prop(into)] series: Signal<Vec<Series>>,
    #[prop(into)] markers: Signal<Vec<Marker>>,
    x_label: &'static str,
    y_label: &'static str,
    /// A linear y axis from 0 to this value instead of a logarithmic one (0: fitted to the data).
    #[prop(optional)]
    linear_y: Option<f64>,
    /// The x axis reaches at least this far (e.g. the model's context).
    #[prop(optional)]
    x_max: Option<f64>,
    #[prop(optional)] y_format: YFormat,
    #[prop(optional)] testid: &'static str,
    /// With `linear_y`: where the y axis starts (0 unless given; negative for signed values).
    #[prop(optional)]
    y_lo: Option<f64>,
    /// What x is called in a point's value ("T" unless given).
    #[prop(optional)]
    x_name: Option<&'static str>,
) -> impl IntoView {
    let x_name = x_name.unwrap_or("T");
    let y_lo = y_lo.unwrap_or(0.0);
    let figure = NodeRef::<leptos::html::Figure>::new();
    let width = RwSignal::new(520.0f64);
    // Its width from an observer after the browser's layout (reading
    // `clientWidth` as the chart is made forces a layout of the whole page).
    let watch = StoredValue::new_local(None::<WidthWatch>);
    Effect::new(move |_| {
        let made = figure.get().and_then(|f| {
            WidthWatch::new(&f, move |w| {
                if w > 0.0 && (w - width.get_untracked()).abs() >= 1.0 {
                    width.set(w.clamp(MIN_W, MAX_W));
                }
            })
        });
        watch.set_value(made);
    });
    // The point whose value shows: (series, point).
    let active = RwSignal::new(None::<(usize, usize)>);

    let on_key = move |ev: web_sys::KeyboardEvent| {
        let s = series.get_untracked();
        if s.iter().all(|l| l.points.is_empty()) {
            return;
        }
        let (mut si, mut pi) = active.get_untracked().unwrap_or((0, 0));
        match ev.key().as_str() {
            "ArrowRight" => pi += 1,
            "ArrowLeft" => pi = pi.saturating_sub(1),
            "ArrowDown" => si += 1,
            "ArrowUp" => si = si.saturating_sub(1),
            "Home" => pi = 0,
            "End" => pi = usize::MAX,
            "Escape" => return active.set(None),
            _ => return,
        }
        ev.prevent_default();
        si = si.min(s.len() - 1);
        while s[si].points.is_empty() && si > 0 {
            si -= 1;
        }
        pi = pi.min(s[si].points.len().saturating_sub(1));
        active.set(Some((si, pi)));
    };

    let drawing = move || {
        let w = width.get();
        let series = series.get();
        let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).chain(x_max);
        let x = LogAxis::fit(xs, LEFT, w - RIGHT);
        let ys: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).collect();
        let log_y = LogAxis::fit(ys.iter().copied(), H - BOTTOM, TOP);
        let max_y = ys.iter().copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
        let linear_y = linear_y.map(|hi| if hi > 0.0 { hi } else { ((max_y * 1.1) / 0.05).ceil().max(1.0) * 0.05 });
        let lin_y = linear_y.map(|hi| LinearAxis { lo: y_lo, hi, px0: H - BOTTOM, px1: TOP });
        let y_at = move |v: f64| lin_y.map_or_else(|| log_y.at(v), |a| a.at(v));
        let y_ticks: Vec<f64> = match linear_y {
            Some(hi) => (0..=4).map(|i| y_lo + (hi - y_lo) * i as f64 / 4.0).collect(),
            None => log_y.ticks(6),
        };
        let fine = linear_y.is_some_and(|hi| hi < 0.2);
        // x ticks thinned so their labels keep a gap between them.
        let x_ticks = x.ticks(((w - LEFT - RIGHT) / (6.0 * CHAR_W)).max(2.0) as usize);
        let grid_x = x_ticks
            .into_iter()
            .map(|t| {
                let px = x.at(t);
                view! {
                    <line x1=px x2=px y1=TOP y2=H - BOTTOM class="chart-grid" />
                    <text x=px y=H - BOTTOM + 15.0 text-anchor="middle" class="chart-tick">{short(t)}</text>
                }
            })
            .collect_view();
        let grid_y = y_ticks
            .into_iter()
            .map(|t| {
                let py = y_at(t);
                let label = match (linear_y, y_format) {
                    (_, YFormat::Percent) => format_y(t, y_format, fine),
                    (Some(_), _) if fine => format!("{t:.3}"),
                    (Some(_), _) => format!("{t:.2}"),
                    (None, _) => short(t),
                };
                view! {
                    <line x1=LEFT x2=w - RIGHT y1=py y2=py class="chart-grid" />
                    <text x=LEFT - 5.0 y=py + 4.0 text-anchor="end" class="chart-tick">{label}</text>
                }
            })
            .collect_view();
        // Marker labels in rows at the top, moved down a row where they would overlap.
        let marks = markers.get();
        let spans: Vec<(f64, f64)> =
            marks.iter().map(|m| (x.at(m.x), m.label.chars().count() as f64 * CHAR_W)).collect();
        let placed = stack_labels(&spans, LEFT, w - RIGHT);
        let marks = marks
            .into_iter()
            .zip(placed)
            .map(|(m, (left, row))| {
                let px = x.at(m.x);
                view! {
                    <line x1=px x2=px y1=TOP y2=H - BOTTOM class="chart-marker" />
                    <text x=left y=TOP + 11.0 + row as f64 * LABEL_ROW class="chart-marker-label">{m.label}</text>
                }
            })
            .collect_view();
        let lines = series
            .iter()
            .enumerate()
            .map(|(si, s)| {
                let d = path(s.points.iter().map(|&(a, b)| (x.at(a), y_at(b))));
                let dots = s
                    .points
                    .iter()
                    .enumerate()
                    .map(|(pi, &(a, b))| {
                        let tip = format!(
                            "{} at {x_name} = {}: {} {}",
                            s.name,
                            short(a),
                            format_y(b, y_format, true),
                            s.unit
                        );
                        view! {
                            <circle cx=x.at(a) cy=y_at(b) r="3.5" fill=s.colour class="chart-dot"
                                class:active=move || active.get() == Some((si, pi))
                                on:mouseenter=move |_| active.set(Some((si, pi)))
                                on:click=move |_| active.set(Some((si, pi)))><title>{tip}</title></circle>
                        }
                    })
                    .collect_view();
                view! { <path d=d stroke=s.colour fill="none" stroke-width="2" />{dots} }
            })
            .collect_view();
        // The active point's value, next to it and inside the chart: a closure of
        // its own, so a key or a hover redraws the callout alone.
        let callout = move || {
            let (si, pi) = active.get()?;
            let s = series.get(si)?;
            let &(a, b) = s.points.get(pi)?;
            let text = format!("{x_name} = {}: {} {}", short(a), format_y(b, y_format, true), s.unit);
            let tw = text.chars().count() as f64 * CHAR_W + 12.0;
            let (px, py) = (x.at(a), y_at(b));
            let bx = if px + 10.0 + tw > w - RIGHT { px - 10.0 - tw } else { px + 10.0 };
            let by = (py - 12.0).clamp(TOP, H - BOTTOM - 22.0);
            Some(view! {
                <g class="chart-callout" data-testid="chart-callout" pointer-events="none">
                    <circle cx=px cy=py r="6" fill="none" stroke=s.colour stroke-width="2" class="chart-ring" />
                    <rect x=bx y=by width=tw height="22" rx="4" />
                    <text x=bx + 6.0 y=by + 15.0>{text}</text>
                </g>
            })
        };
        view! {
            {grid_x}{grid_y}{marks}{lines}{callout}
            <text x=(LEFT + w - RIGHT) / 2.0 y=H - 4.0 text-anchor="middle" class="chart-axis">{x_label}</text>
            <text x="12" y=(TOP + H - BOTTOM) / 2.0 text-anchor="middle" class="chart-axis"
                transform=format!("rotate(-90 12 {})", (TOP + H - BOTTOM) / 2.0)>{y_label}</text>
        }
    };
    // What the active point says, for screen readers.
    let spoken = move || {
        let (si, pi) = active.get()?;
        let s = series.with(|s| s.get(si).cloned())?;
        let &(a, b) = s.points.get(pi)?;
        Some(format!("{} at {x_name} = {}: {} {}", s.name, short(a), format_y(b, y_format, true), s.unit))
    };
    let legend = move || {
        series
            .get()
            .into_iter()
            .map(|s| {
                view! { <span class="chart-key"><span class="chart-swatch" style:background=s.colour></span>{s.name}</span> }
            })
            .collect_view()
    };
    view! {
        <figure class="chart" data-testid=testid node_ref=figure>
            // The <svg> stays while the data, the width or the active point
            // change: rebuilt, it would lose the keyboard focus (with Leptos's
            // erase_components its tabindex is removed and set again).
            <svg viewBox=move || format!("0 0 {} {H}", width.get()) width=move || width.get() height=H tabindex="0"
                role="img" aria-label=format!("{y_label} against {x_label}. Arrow keys read the points.")
                on:keydown=on_key on:mouseleave=move |_| active.set(None) on:blur=move |_| active.set(None)>
                {drawing}
            </svg>
            <figcaption class="chart-legend">{legend}</figcaption>
            <p class="sr-only" aria-live="polite">{spoken}</p>
        </figure>
    }
}
