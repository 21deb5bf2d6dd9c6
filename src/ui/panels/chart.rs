//! A small SVG line chart on logarithmic (or, for y, linear) axes, drawn as
//! SVG elements from numbers (`render::plot` does the geometry). Every point
//! has a tooltip with its exact value.

use leptos::prelude::*;

use crate::render::plot::{path, short, LinearAxis, LogAxis};

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub colour: &'static str,
    pub points: Vec<(f64, f64)>,
    /// How a value reads in a tooltip (e.g. "FLOPs").
    pub unit: &'static str,
}

/// A vertical marker (e.g. the current T).
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub x: f64,
    pub label: String,
}

const W: f64 = 520.0;
const H: f64 = 250.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 34.0;

#[component]
pub fn LogChart(
    #[prop(into)] series: Signal<Vec<Series>>,
    #[prop(into)] markers: Signal<Vec<Marker>>,
    x_label: &'static str,
    y_label: &'static str,
    /// A linear y axis from 0 to this value instead of a logarithmic one (0: fitted to the data).
    #[prop(optional)]
    linear_y: Option<f64>,
    #[prop(optional)] testid: &'static str,
) -> impl IntoView {
    move || {
        let series = series.get();
        let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
        let x = LogAxis::fit(xs, LEFT, W - RIGHT);
        let ys: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).collect();
        let log_y = LogAxis::fit(ys.iter().copied(), H - BOTTOM, TOP);
        let max_y = ys.iter().copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
        let linear_y = linear_y.map(|hi| if hi > 0.0 { hi } else { ((max_y * 1.1) / 0.05).ceil().max(1.0) * 0.05 });
        let lin_y = linear_y.map(|hi| LinearAxis { lo: 0.0, hi, px0: H - BOTTOM, px1: TOP });
        let y_at = move |v: f64| lin_y.map_or_else(|| log_y.at(v), |a| a.at(v));
        let y_ticks: Vec<f64> = match linear_y {
            Some(hi) => (0..=4).map(|i| hi * i as f64 / 4.0).collect(),
            None => log_y.ticks(6),
        };
        let grid_x = x
            .ticks(8)
            .into_iter()
            .map(|t| {
                let px = x.at(t);
                view! {
                    <line x1=px x2=px y1=TOP y2=H - BOTTOM class="chart-grid" />
                    <text x=px y=H - BOTTOM + 14.0 text-anchor="middle" class="chart-tick">{short(t)}</text>
                }
            })
            .collect_view();
        let grid_y = y_ticks
            .into_iter()
            .map(|t| {
                let py = y_at(t);
                let label = match linear_y {
                    Some(hi) if hi < 0.2 => format!("{t:.3}"),
                    Some(_) => format!("{t:.2}"),
                    None => short(t),
                };
                view! {
                    <line x1=LEFT x2=W - RIGHT y1=py y2=py class="chart-grid" />
                    <text x=LEFT - 5.0 y=py + 4.0 text-anchor="end" class="chart-tick">{label}</text>
                }
            })
            .collect_view();
        let marks = markers
            .get()
            .into_iter()
            .map(|m| {
                let px = x.at(m.x);
                view! {
                    <line x1=px x2=px y1=TOP y2=H - BOTTOM class="chart-marker" />
                    <text x=px + 3.0 y=TOP + 10.0 class="chart-marker-label">{m.label}</text>
                }
            })
            .collect_view();
        let lines = series
            .iter()
            .map(|s| {
                let d = path(s.points.iter().map(|&(a, b)| (x.at(a), y_at(b))));
                let dots = s
                    .points
                    .iter()
                    .map(|&(a, b)| {
                        let tip = format!("{} at T = {}: {} {}", s.name, short(a), short(b), s.unit);
                        view! {
                            <circle cx=x.at(a) cy=y_at(b) r="3.5" fill=s.colour class="chart-dot"><title>{tip}</title></circle>
                        }
                    })
                    .collect_view();
                view! { <path d=d stroke=s.colour fill="none" stroke-width="2" />{dots} }
            })
            .collect_view();
        let legend = series
            .iter()
            .map(|s| {
                view! { <span class="chart-key"><span class="chart-swatch" style:background=s.colour></span>{s.name.clone()}</span> }
            })
            .collect_view();
        view! {
            <figure class="chart" data-testid=testid>
                <svg viewBox=format!("0 0 {W} {H}") width="100%" role="img" aria-label=y_label>
                    {grid_x}{grid_y}{marks}{lines}
                    <text x=(LEFT + W - RIGHT) / 2.0 y=H - 4.0 text-anchor="middle" class="chart-axis">{x_label}</text>
                    <text x="12" y=(TOP + H - BOTTOM) / 2.0 text-anchor="middle" class="chart-axis"
                        transform=format!("rotate(-90 12 {})", (TOP + H - BOTTOM) / 2.0)>{y_label}</text>
                </svg>
                <figcaption class="chart-legend">{legend}</figcaption>
            </figure>
        }
    }
}
