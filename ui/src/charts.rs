//! Charts as SVG, drawn with plotters: a run's task timings (a Gantt chart), one
//! metric across runs (bars), ROC curves and confusion matrices from KFP's
//! classification metrics.

use maud::{Markup, PreEscaped, html};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use sluice_runtime::store::{RunRecord, TaskState};

/// Tasks a Gantt chart shows at most (the first by start time).
const GANTT_TASKS: usize = 200;

/// Colours of the runs in charts that compare them, in order; all at least 4.5:1
/// against white.
pub(crate) const SERIES: [RGBColor; 6] = [
    RGBColor(0x1f, 0x5f, 0xa8),
    RGBColor(0xb3, 0x40, 0x0a),
    RGBColor(0x2e, 0x6b, 0x2e),
    RGBColor(0x7b, 0x3f, 0x9e),
    RGBColor(0x8a, 0x5a, 0x00),
    RGBColor(0x00, 0x6d, 0x77),
];

fn state_colour(state: TaskState) -> RGBColor {
    match state {
        TaskState::Succeeded => RGBColor(0x2e, 0x7d, 0x32),
        TaskState::Failed => RGBColor(0xc6, 0x28, 0x28),
        TaskState::Running => RGBColor(0x15, 0x65, 0xc0),
        TaskState::Cancelled => RGBColor(0x6d, 0x4c, 0x41),
        TaskState::Pending | TaskState::Skipped => RGBColor(0x75, 0x75, 0x75),
    }
}

/// Runs `draw` on an SVG of `size` pixels and returns the SVG, or a note of what went
/// wrong (plotters reports bad ranges, for one).
fn svg(
    size: (u32, u32),
    label: &str,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<(), String>,
) -> Markup {
    let mut out = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(|e| e.to_string()))
    };
    match result {
        Ok(()) => html! {
            figure.chart role="img" aria-label=(label) { (PreEscaped(out)) }
        },
        Err(e) => html! { p.note { "No chart: " (e) } },
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The run's tasks as bars from their start to their end (or now), in start order,
/// coloured by state, seconds from the run's start along the bottom.
pub(crate) fn gantt(run: &RunRecord) -> Markup {
    let mut tasks: Vec<_> = run
        .tasks
        .iter()
        .filter_map(|t| Some((t, t.started_at?)))
        .collect();
    if tasks.is_empty() {
        return html! { p.empty { "No task has started." } };
    }
    tasks.sort_by_key(|(_, s)| *s);
    let more = tasks.len().saturating_sub(GANTT_TASKS);
    tasks.truncate(GANTT_TASKS);
    let origin = run.started_at;
    let secs = |t: jiff::Timestamp| t.duration_since(origin).as_secs_f64().max(0.0);
    let now = jiff::Timestamp::now();
    let bars: Vec<(String, f64, f64, TaskState)> = tasks
        .iter()
        .map(|(t, s)| {
            let end = secs(t.ended_at.unwrap_or(now));
            (t.name.clone(), secs(*s), end.max(secs(*s)), t.state)
        })
        .collect();
    let total = bars.iter().map(|b| b.2).fold(0.0f64, f64::max).max(0.001) * 1.02;
    if !total.is_finite() {
        return html! { p.note { "No chart: the tasks' times do not read." } };
    }
    let n = bars.len();
    let height = (40 + 22 * n as u32).max(120);
    let chart = svg((900, height), "Task timings", |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(170)
            .build_cartesian_2d(0f64..total, (0..n - 1).into_segmented())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .label_style(("sans-serif", 13))
            .x_labels(10)
            .x_desc("seconds from the run's start")
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) if *i < n => {
                    crate::runs::short(&bars[n - 1 - *i].0, 24)
                }
                _ => String::new(),
            })
            .draw()
            .map_err(err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, start, end, state))| {
                let row = n - 1 - i;
                let end = if end - start < total / 500.0 {
                    start + total / 500.0
                } else {
                    *end
                };
                Rectangle::new(
                    [
                        (*start, SegmentValue::Exact(row)),
                        (end, SegmentValue::Exact(row + 1)),
                    ],
                    state_colour(*state).filled(),
                )
            }))
            .map_err(err)?;
        Ok(())
    });
    html! {
        (chart)
        @if more > 0 { p.note { "And " (more) " more tasks." } }
    }
}

/// One metric across runs: a bar per run that has it, labelled with its value.
pub(crate) fn metric_bars(metric: &str, values: &[(String, Option<f64>)]) -> Markup {
    let present: Vec<(usize, &str, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, (run, v))| Some((i, run.as_str(), (*v)?)))
        .filter(|(_, _, v)| v.is_finite())
        .collect();
    if present.is_empty() {
        return html! {};
    }
    let lo = present.iter().map(|p| p.2).fold(0.0f64, f64::min);
    let hi = present.iter().map(|p| p.2).fold(0.0f64, f64::max);
    let (lo, hi) = if hi - lo < 1e-12 {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo, hi + (hi - lo) * 0.15)
    };
    // An axis whose span is not a finite number (values near f64's limits) cannot be
    // drawn: plotters would search for its ticks forever.
    if !(hi - lo).is_finite() {
        return html! { p.note { (metric) ": values too far apart to chart." } };
    }
    let n = values.len();
    svg((420, 260), &format!("{metric} per run"), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .caption(metric, ("sans-serif", 16))
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d((0..n - 1).into_segmented(), lo..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .label_style(("sans-serif", 12))
            .x_labels(n)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) if *i < n => crate::runs::short(&values[*i].0, 20),
                _ => String::new(),
            })
            .draw()
            .map_err(err)?;
        chart
            .draw_series(present.iter().map(|(i, _, v)| {
                Rectangle::new(
                    [
                        (SegmentValue::Exact(*i), 0.0f64.clamp(lo, hi)),
                        (SegmentValue::Exact(*i + 1), *v),
                    ],
                    SERIES[*i % SERIES.len()].filled(),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(present.iter().map(|(i, _, v)| {
                Text::new(
                    format!("{v:.4}"),
                    (SegmentValue::CenterOf(*i), *v + (hi - lo) * 0.07),
                    ("sans-serif", 13).into_font().color(&BLACK),
                )
            }))
            .map_err(err)?;
        Ok(())
    })
}

/// One ROC curve per run (false positive rate across, true positive rate up), with the
/// diagonal of a classifier that guesses.
pub(crate) fn roc(curves: &[(String, Vec<(f64, f64)>)]) -> Markup {
    if curves.iter().all(|(_, points)| points.is_empty()) {
        return html! {};
    }
    svg((460, 420), "ROC curves", |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .caption("ROC curve", ("sans-serif", 16))
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .label_style(("sans-serif", 13))
            .x_desc("false positive rate")
            .y_desc("true positive rate")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                RGBColor(0x90, 0x90, 0x90).stroke_width(1),
            ))
            .map_err(err)?;
        for (i, (run, points)) in curves.iter().enumerate() {
            let colour = SERIES[i % SERIES.len()];
            // Rates are between 0 and 1; anything else a step wrote is not drawn.
            let mut points: Vec<(f64, f64)> = points
                .iter()
                .copied()
                .filter(|(x, y)| (0.0..=1.0).contains(x) && (0.0..=1.0).contains(y))
                .collect();
            points.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(err)?
                .label(run.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

/// A confusion matrix as a table: actual classes down, predicted across, each cell
/// shaded by its share of its row.
pub(crate) fn confusion(labels: &[String], rows: &[Vec<f64>]) -> Markup {
    html! {
        table.confusion {
            caption { "Confusion matrix" br; "actual ↓, predicted →" }
            thead { tr { th scope="col" { span.visually-hidden { "Actual" } } @for l in labels { th scope="col" { (l) } } } }
            tbody {
                @for (label, row) in labels.iter().zip(rows) {
                    @let total: f64 = row.iter().sum();
                    tr {
                        th scope="row" { (label) }
                        @for v in row {
                            @let share = if total > 0.0 { v / total } else { 0.0 };
                            td.num class={ "shade-" ((share * 4.0).round() as u8) } { (v) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_too_far_apart_are_not_charted() {
        // An axis from 0 to 1.6e308 spans more than f64 holds once padded: plotters would
        // look for its ticks forever.
        let huge = [("a".to_owned(), Some(0.0)), ("b".to_owned(), Some(1.6e308))];
        let chart = metric_bars("loss", &huge).into_string();
        assert!(chart.contains("too far apart"), "{chart}");
        let both = [
            ("a".to_owned(), Some(-1e308)),
            ("b".to_owned(), Some(1e308)),
        ];
        assert!(
            metric_bars("loss", &both)
                .into_string()
                .contains("too far apart")
        );
        let fine = [
            ("a".to_owned(), Some(0.25)),
            ("b".to_owned(), Some(f64::NAN)),
        ];
        assert!(metric_bars("loss", &fine).into_string().contains("<svg"));
    }

    #[test]
    fn roc_points_outside_the_unit_square_are_not_drawn() {
        let curve = roc(&[(
            "r".to_owned(),
            vec![(0.0, 0.0), (f64::NAN, 0.5), (2.0, 0.5), (1.0, 1.0)],
        )])
        .into_string();
        assert!(curve.contains("<svg"), "{curve}");
    }
}
