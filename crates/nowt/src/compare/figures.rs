//! The report's figures, drawn as SVG by `plotters`: test error and train loss against epoch
//! (one line per rule, a band over seeds), `∠(W, M)` of every layer against epoch (one panel per
//! rule, lines from blue at the bottom layer to red at the top, as in the paper's angle
//! figures), the final angles against layer depth, and, for runs made with `probe_every`, the
//! angles against the training step.

use std::path::Path;

use crate::rules::RuleKind;
use crate::train::EpochRecord;
use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::report::Group;

const SIZE: (u32, u32) = (900, 560);
const FONT: &str = "sans-serif";

/// Width of the legend column beside each figure's data: legends never cover curves.
const LEGEND_W: u32 = 250;

/// The whole canvas of a figure, in pixels from its top left corner.
type Canvas<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// A mark drawn at every point of a rule's curve.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Marker {
    Plain,
    Circle,
    Triangle,
    Square,
}

/// How a rule's curves look in every figure: its colour, and a dash pattern (`(on, off)` in
/// pixels, `None` solid) and marker that tell the rules apart without colour too (in grey print),
/// distinct for up to 16 rules.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Look {
    colour: RGBColor,
    dash: Option<(u32, u32)>,
    marker: Marker,
}

/// One colour per rule: the paper's five first (backprop black), then the rest of the Tableau
/// palette and its light shades in registry order. The dash cycles fastest (solid, long, short,
/// dotted) and the marker once every four rules, so the 16 (dash, marker) pairs differ as well.
fn rule_look(rule: RuleKind) -> Look {
    const PALETTE: [RGBColor; 16] = [
        RGBColor(0, 0, 0),
        RGBColor(214, 39, 40),
        RGBColor(255, 127, 14),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(23, 190, 207),
        RGBColor(188, 189, 34),
        RGBColor(174, 199, 232),
        RGBColor(255, 187, 120),
        RGBColor(152, 223, 138),
        RGBColor(197, 176, 213),
        RGBColor(247, 182, 210),
    ];
    const DASHES: [Option<(u32, u32)>; 4] = [None, Some((12, 5)), Some((5, 4)), Some((2, 3))];
    const MARKERS: [Marker; 4] = [
        Marker::Plain,
        Marker::Circle,
        Marker::Triangle,
        Marker::Square,
    ];
    let i = RuleKind::ALL.iter().position(|&k| k == rule).unwrap_or(0);
    Look {
        colour: PALETTE[i % PALETTE.len()],
        dash: DASHES[i % DASHES.len()],
        marker: MARKERS[(i / DASHES.len()) % MARKERS.len()],
    }
}

/// Draws `look`'s mark at pixel `p` of `area`; a plain line's single point gets a dot (a line
/// through one point draws nothing).
fn draw_marker(area: &Canvas, p: (i32, i32), look: Look, single: bool, file: &Path) -> Result<()> {
    let style = look.colour.filled();
    let (x, y) = p;
    match look.marker {
        Marker::Plain if single => area.draw(&Circle::new(p, 4, style)),
        Marker::Plain => Ok(()),
        Marker::Circle => area.draw(&Circle::new(p, 4, style)),
        Marker::Triangle => area.draw(&TriangleMarker::new(p, 6, style)),
        Marker::Square => area.draw(&Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], style)),
    }
    .map_err(fail(file))
}

/// Draws a curve through pixels `px` of `area` as `look` says: its colour and dash, `width`
/// pixels wide, its marker at every point.
fn draw_curve(area: &Canvas, px: &[(i32, i32)], look: Look, width: u32, file: &Path) -> Result<()> {
    let style = look.colour.stroke_width(width);
    match look.dash {
        None => area.draw(&PathElement::new(px.to_vec(), style)),
        Some((on, off)) => area.draw(&DashedPathElement::new(px.iter().copied(), on, off, style)),
    }
    .map_err(fail(file))?;
    for &p in px {
        draw_marker(area, p, look, px.len() == 1, file)?;
    }
    Ok(())
}

/// One line of a legend: a rule's name and look, and why it stopped if none of its runs finished
/// (a rule that drew nothing is listed with its reason, not left as an unexplained entry).
struct Entry {
    name: String,
    look: Look,
    stopped: Option<String>,
}

impl Entry {
    fn of(g: &Group) -> Self {
        Entry {
            name: g.title(),
            look: rule_look(g.rule),
            stopped: stopped(g),
        }
    }
}

/// Why a rule stopped, when every run of it did (its first run's cause).
fn stopped(g: &Group) -> Option<String> {
    let why = g
        .runs
        .iter()
        .map(|r| r.failed.as_deref())
        .collect::<Option<Vec<_>>>()?;
    Some(cause(why.first()?).to_string())
}

/// A stopped run's cause: its error's second link ("training diverged at epoch 1, step 48"); the
/// first names the run.
fn cause(why: &str) -> &str {
    why.split(": ").nth(1).unwrap_or(why)
}

/// `text` cut into lines of at most `width` characters at spaces, `lines` of them at most, the
/// last ending in "…" when text is left over.
fn wrap(text: &str, width: usize, lines: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match out.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => out.push(word.chars().take(width).collect()),
        }
    }
    if out.len() > lines {
        out.truncate(lines);
        out[lines - 1].push('…');
    }
    out
}

/// A legend in its own column beside the data: each entry's line sample (colour, dash and
/// marker) and its name, top down; a rule that stopped has its reason under its name.
fn side_legend(area: &Canvas, entries: &[Entry], file: &Path) -> Result<()> {
    let mut y = 48;
    for e in entries {
        let plain = Look {
            marker: Marker::Plain,
            ..e.look
        };
        draw_curve(area, &[(8, y), (48, y)], plain, 2, file)?;
        draw_marker(area, (28, y), e.look, false, file)?;
        area.draw(&Text::new(e.name.clone(), (56, y - 8), (FONT, 15)))
            .map_err(fail(file))?;
        let note = e.stopped.as_ref().map(|why| format!("stopped: {why}"));
        for line in wrap(note.as_deref().unwrap_or(""), 30, 3) {
            y += 16;
            let grey = (FONT, 12).into_font().color(&RGBColor(90, 90, 90));
            area.draw(&Text::new(line, (56, y - 6), grey))
                .map_err(fail(file))?;
        }
        y += 26;
    }
    Ok(())
}

/// A figure's canvas (`size` wide and high, white) split into the data's part and the legend's
/// column to its right.
fn with_legend_column(
    file: &Path,
    size: (u32, u32),
) -> Result<(Canvas<'_>, Canvas<'_>, Canvas<'_>)> {
    let canvas: Canvas<'_> = SVGBackend::new(file, size).into_drawing_area();
    canvas.fill(&WHITE).map_err(fail(file))?;
    let (data, side) = canvas.split_horizontally(size.0 - LEGEND_W);
    Ok((canvas, data, side))
}

/// An axis of whole numbers (epochs, layers): a label at each whole value, none between.
fn whole(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{}", v.round())
    } else {
        String::new()
    }
}

/// A value as its axis label: at most three significant digits and no float noise
/// (`0.30000000000000004` is `0.3`).
fn tidy(v: &f64) -> String {
    if *v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A log axis's labels: 1, 2, 3 and 5 times each power of ten from `lo` to `hi`, so values
/// below the first power of ten in range are labelled too.
fn log_labels(lo: f64, hi: f64) -> Vec<f64> {
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    (first..=last)
        .flat_map(|k| [1.0, 2.0, 3.0, 5.0].map(|m| m * 10f64.powi(k)))
        .filter(|v| (lo..=hi).contains(v))
        .collect()
}

/// Layer `i` of `n`, bottom (blue) to top (red).
fn layer_colour(i: usize, n: usize) -> RGBColor {
    let t = if n > 1 {
        i as f64 / (n - 1) as f64
    } else {
        0.0
    };
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(mix(40.0, 220.0), mix(70.0, 40.0), mix(220.0, 40.0))
}

fn fail<E: std::fmt::Display>(file: &Path) -> impl Fn(E) -> anyhow::Error + '_ {
    move |e| anyhow!("cannot draw {}: {e}", file.display())
}

/// Per epoch (1-based) the mean, minimum and maximum of `f` over the runs that reached it.
fn per_epoch(g: &Group, f: impl Fn(&EpochRecord) -> Option<f64>) -> Vec<(f64, f64, f64, f64)> {
    let longest = g.runs.iter().map(|r| r.epochs.len()).max().unwrap_or(0);
    (0..longest)
        .filter_map(|e| {
            let v: Vec<f64> = g
                .runs
                .iter()
                .filter_map(|r| r.epochs.get(e).and_then(&f))
                .filter(|v| v.is_finite())
                .collect();
            if v.is_empty() {
                return None;
            }
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            Some(((e + 1) as f64, mean, lo, hi))
        })
        .collect()
}

/// A curve per rule against epoch, with a band from the lowest to the highest seed.
fn per_rule_curves(
    groups: &[Group],
    file: &Path,
    caption: &str,
    y_desc: &str,
    log_y: bool,
    f: impl Fn(&EpochRecord) -> Option<f64> + Copy,
) -> Result<()> {
    let curves: Vec<_> = groups.iter().map(|g| (g.rule, per_epoch(g, f))).collect();
    let pts = curves.iter().flat_map(|(_, c)| c.iter());
    let x_max = pts.clone().map(|p| p.0).fold(1.0, f64::max);
    let y_lo = pts.clone().map(|p| p.2).fold(f64::INFINITY, f64::min);
    let y_hi = pts.map(|p| p.3).fold(f64::NEG_INFINITY, f64::max);
    let (y_lo, y_hi) = if y_lo.is_finite() {
        (y_lo, y_hi)
    } else {
        (0.0, 1.0)
    };
    let (canvas, data, side) = with_legend_column(file, SIZE)?;
    let mut builder = ChartBuilder::on(&data);
    builder
        .caption(caption, (FONT, 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70);
    let x_range = 1f64..x_max.max(2.0);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc(y_desc)
                .x_label_formatter(&whole)
                .y_label_formatter(&tidy)
                .y_labels(12)
                .axis_desc_style((FONT, 16))
                .draw()
                .map_err(fail(file))?;
            for (rule, c) in &curves {
                let look = rule_look(*rule);
                if c.iter().any(|p| p.2 != p.3) {
                    let band: Vec<(f64, f64)> = c
                        .iter()
                        .map(|p| (p.0, p.3))
                        .chain(c.iter().rev().map(|p| (p.0, p.2)))
                        .collect();
                    chart
                        .draw_series(std::iter::once(Polygon::new(band, look.colour.mix(0.18))))
                        .map_err(fail(file))?;
                }
                let px: Vec<_> = c.iter().map(|p| chart.backend_coord(&(p.0, p.1))).collect();
                draw_curve(&canvas, &px, look, 2, file)?;
            }
        }};
    }
    if log_y {
        let lo = (y_lo.max(1e-6) / 1.5).max(1e-6);
        let hi = (y_hi * 1.5).max(lo * 10.0);
        draw!(builder
            .build_cartesian_2d(
                x_range,
                (lo..hi).log_scale().with_key_points(log_labels(lo, hi))
            )
            .map_err(fail(file))?);
    } else {
        let pad = ((y_hi - y_lo) * 0.05).max(0.5);
        draw!(builder
            .build_cartesian_2d(x_range, (y_lo - pad).max(0.0)..y_hi + pad)
            .map_err(fail(file))?);
    }
    let entries: Vec<_> = groups.iter().map(Entry::of).collect();
    side_legend(&side, &entries, file)?;
    canvas.present().map_err(fail(file))?;
    Ok(())
}

/// `∠(W, M)` of every layer against epoch, one panel per rule (the first seed of each).
fn angle_panels(groups: &[Group], file: &Path) -> Result<()> {
    let cols = groups.len().clamp(1, 3);
    let rows = groups.len().div_ceil(cols).max(1);
    let root = SVGBackend::new(file, (420 * cols as u32, 340 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(fail(file))?;
    let root = root
        .titled(
            "∠(W, M) per layer against epoch (blue: bottom layer → red: top layer)",
            (FONT, 20),
        )
        .map_err(fail(file))?;
    let panels: Vec<DrawingArea<SVGBackend, Shift>> = root.split_evenly((rows, cols));
    for (g, area) in groups.iter().zip(panels) {
        let run = g.runs[0];
        let layers = run.epochs.first().map_or(0, |e| e.layers.len());
        let x_max = (run.epochs.len() as f64).max(2.0);
        // A run that stopped says so in its panel (the reason in full is in the report).
        let stopped = run.failed.as_deref().map_or(String::new(), |why| {
            format!(" — stopped: {}", wrap(cause(why), 48, 1).concat())
        });
        let caption = format!("{} (seed {}){stopped}", g.title(), run.cfg.seed);
        let mut chart = ChartBuilder::on(&area)
            .caption(caption, (FONT, 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(1f64..x_max, 0f64..95f64)
            .map_err(fail(file))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("∠(W, M) (degrees)")
            .x_label_formatter(&whole)
            .y_label_formatter(&tidy)
            .draw()
            .map_err(fail(file))?;
        for l in 0..layers {
            let colour = layer_colour(l, layers);
            let pts = run
                .epochs
                .iter()
                .filter_map(|e| Some((e.epoch as f64, e.layers.get(l)?.weight_angle_deg?)));
            let pts: Vec<(f64, f64)> = pts.collect();
            if let [p] = pts.as_slice() {
                let mark = Circle::new(*p, 3, colour.filled());
                chart
                    .draw_series(std::iter::once(mark))
                    .map_err(fail(file))?;
            }
            chart
                .draw_series(LineSeries::new(pts, colour.stroke_width(1)))
                .map_err(fail(file))?;
        }
    }
    root.present().map_err(fail(file))?;
    Ok(())
}

/// A panel of angles (0–95°) against `x`, its axes drawn.
fn degree_panel<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    x: std::ops::Range<f64>,
    x_desc: &str,
    file: &Path,
) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(52)
        .build_cartesian_2d(x, 0f64..95f64)
        .map_err(fail(file))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("degrees")
        .x_label_formatter(&whole)
        .y_label_formatter(&tidy)
        .draw()
        .map_err(fail(file))?;
    Ok(chart)
}

/// Final `∠(W, M)` and `∠(δ, δbp)` against layer depth, one line per rule (first seed).
fn depth_panels(groups: &[Group], file: &Path) -> Result<()> {
    let (canvas, data, side) = with_legend_column(file, (1100 + LEGEND_W, 480))?;
    let halves = data.split_evenly((1, 2));
    type Pick = fn(&crate::metrics::LayerRecord) -> Option<f64>;
    let picks: [(&str, Pick); 2] = [
        ("final ∠(W, M) against depth", |l| l.weight_angle_deg),
        ("final ∠(δ, δbp) against depth", |l| l.delta_angle_deg),
    ];
    let layers = groups
        .iter()
        .filter_map(|g| g.runs[0].epochs.last().map(|e| e.layers.len()))
        .max()
        .unwrap_or(1);
    for ((title, pick), area) in picks.into_iter().zip(halves) {
        let x = 1f64..(layers as f64).max(2.0);
        let chart = degree_panel(&area, title, x, "weight layer (1 = bottom)", file)?;
        for g in groups {
            let Some(last) = g.runs[0].epochs.last() else {
                continue;
            };
            let px: Vec<_> = last
                .layers
                .iter()
                .enumerate()
                .filter_map(|(i, l)| Some(chart.backend_coord(&((i + 1) as f64, pick(l)?))))
                .collect();
            // Each layer marked, so a rule with one layer that carries an error still shows.
            let look = rule_look(g.rule);
            draw_curve(&canvas, &px, look, 2, file)?;
            if look.marker == Marker::Plain {
                for &p in &px {
                    draw_marker(&canvas, p, look, true, file)?;
                }
            }
        }
    }
    let entries: Vec<_> = groups.iter().map(Entry::of).collect();
    side_legend(&side, &entries, file)?;
    canvas.present().map_err(fail(file))?;
    Ok(())
}

/// Within training (`probes.jsonl`, the first seed of each group that has them): the top
/// weight layer's `∠(W, M)` and the mean `∠(δ, δbp)` over the layers that carry an error,
/// against the training step.
fn probe_panels(groups: &[Group], file: &Path) -> Result<()> {
    let probed: Vec<&Group> = groups
        .iter()
        .filter(|g| !g.runs[0].probes.is_empty())
        .collect();
    let (canvas, data, side) = with_legend_column(file, (1100 + LEGEND_W, 480))?;
    let halves = data.split_evenly((1, 2));
    type Pick = fn(&[crate::metrics::LayerRecord]) -> Option<f64>;
    let picks: [(&str, Pick); 2] = [
        ("output ∠(W, M) within training", |ls| {
            ls.last()?.weight_angle_deg
        }),
        ("mean ∠(δ, δbp) within training", |ls| {
            let v: Vec<f64> = ls.iter().filter_map(|l| l.delta_angle_deg).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        }),
    ];
    let steps = probed
        .iter()
        .filter_map(|g| g.runs[0].probes.last().map(|p| p.global_step))
        .max()
        .unwrap_or(1);
    for ((title, pick), area) in picks.into_iter().zip(halves) {
        let x = 0f64..(steps as f64).max(1.0);
        let chart = degree_panel(&area, title, x, "training step", file)?;
        for g in &probed {
            let px: Vec<_> = g.runs[0]
                .probes
                .iter()
                .filter_map(|p| {
                    let v = pick(&p.layers)?;
                    Some(chart.backend_coord(&(p.global_step as f64, v)))
                })
                .collect();
            draw_curve(&canvas, &px, rule_look(g.rule), 2, file)?;
        }
    }
    let entries: Vec<_> = probed.iter().map(|g| Entry::of(g)).collect();
    side_legend(&side, &entries, file)?;
    canvas.present().map_err(fail(file))?;
    Ok(())
}

/// A sweep: each rule's validation error (mean over seeds, bars from the lowest to the highest
/// seed) at every setting, the settings in order along the x axis.
fn sweep_figure(all: &[Group], file: &Path) -> Result<()> {
    let mut settings: Vec<&str> = Vec::new();
    for g in all {
        if !settings.contains(&g.setting.as_str()) {
            settings.push(&g.setting);
        }
    }
    let at = |g: &Group| settings.iter().position(|s| *s == g.setting).unwrap_or(0) as f64;
    let points: Vec<(RuleKind, f64, f64, f64, f64)> = all
        .iter()
        .filter_map(|g| {
            let v = super::report::val_errors(g, &[]);
            let (mean, _) = super::report::mean_std(&v)?;
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            Some((g.rule, at(g), mean, lo, hi))
        })
        .collect();
    let y_lo = points.iter().map(|p| p.3).fold(f64::INFINITY, f64::min);
    let y_hi = points.iter().map(|p| p.4).fold(f64::NEG_INFINITY, f64::max);
    let (y_lo, y_hi) = if y_lo.is_finite() {
        (y_lo, y_hi)
    } else {
        (0.0, 1.0)
    };
    let pad = ((y_hi - y_lo) * 0.08).max(0.5);
    let (canvas, data, side) = with_legend_column(file, SIZE)?;
    let n = settings.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&data)
        .caption(
            "Validation error at each setting of the sweep (bars: lowest to highest seed)",
            (FONT, 20),
        )
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..n - 0.5, (y_lo - pad).max(0.0)..y_hi + pad)
        .map_err(fail(file))?;
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-9 && i >= 0.0 {
            settings
                .get(i as usize)
                .map_or(String::new(), |s| s.to_string())
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_labels(settings.len().max(2) * 2 + 1)
        .x_label_formatter(&label)
        .x_desc("setting")
        .y_desc("lowest validation top-1 error (%)")
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(fail(file))?;
    let mut entries = Vec::new();
    for &rule in &RuleKind::ALL {
        let mine: Vec<_> = points.iter().filter(|p| p.0 == rule).collect();
        if mine.is_empty() {
            continue;
        }
        let look = rule_look(rule);
        for p in &mine {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(p.1, p.3), (p.1, p.4)],
                    look.colour.stroke_width(1),
                )))
                .map_err(fail(file))?;
        }
        let px: Vec<_> = mine
            .iter()
            .map(|p| chart.backend_coord(&(p.1, p.2)))
            .collect();
        draw_curve(&canvas, &px, look, 2, file)?;
        entries.push(Entry {
            name: rule.name().to_string(),
            look,
            stopped: None,
        });
    }
    side_legend(&side, &entries, file)?;
    canvas.present().map_err(fail(file))?;
    Ok(())
}

/// Draws every figure into `dir` (`groups`: the table's rows; `sweep`: every point of a sweep,
/// each rule's at every setting, empty where there was no sweep, and then no sweep figure);
/// returns `(file name, caption)` of each.
pub fn draw(groups: &[Group], sweep: &[Group], dir: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut add = |name: &str, caption: &str| {
        out.push((name.to_string(), caption.to_string()));
        dir.join(name)
    };
    per_rule_curves(
        groups,
        &add("test_error.svg", "Test top-1 error against epoch"),
        "Test top-1 error against epoch (band: lowest to highest seed)",
        "test top-1 error (%)",
        false,
        |e| Some(100.0 * e.test.top1_err),
    )?;
    per_rule_curves(
        groups,
        &add("train_loss.svg", "Training loss against epoch"),
        "Training loss against epoch (running mean over the epoch)",
        "train loss (cross-entropy, log scale)",
        true,
        |e| Some(e.train.loss),
    )?;
    angle_panels(
        groups,
        &add("weight_angles.svg", "∠(W, M) of every layer against epoch"),
    )?;
    depth_panels(
        groups,
        &add(
            "depth.svg",
            "Final ∠(W, M) and ∠(δ, δbp) against layer depth",
        ),
    )?;
    if groups.iter().any(|g| !g.runs[0].probes.is_empty()) {
        probe_panels(
            groups,
            &add(
                "probes.svg",
                "Output ∠(W, M) and mean ∠(δ, δbp) against training step (probe_every)",
            ),
        )?;
    }
    if !sweep.is_empty() {
        sweep_figure(
            sweep,
            &add("sweep.svg", "Validation error at each setting of the sweep"),
        )?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule of the registry has its own colour (backprop and activation alignment were
    /// both black) and its own pair of dash and marker, for figures printed in grey.
    #[test]
    fn every_rule_has_its_own_colour_and_line_style() {
        let looks: Vec<_> = RuleKind::ALL.iter().map(|&r| rule_look(r)).collect();
        for (i, a) in looks.iter().enumerate() {
            for (j, b) in looks.iter().enumerate().skip(i + 1) {
                let (ri, rj) = (RuleKind::ALL[i], RuleKind::ALL[j]);
                assert_ne!(a.colour, b.colour, "{ri:?} and {rj:?}: colour");
                assert_ne!(
                    (a.dash, a.marker),
                    (b.dash, b.marker),
                    "{ri:?} and {rj:?}: style"
                );
            }
        }
        assert_eq!(looks[0].dash, None, "backprop is a solid line");
    }

    /// A stopped rule's reason is cut at spaces into the legend's lines, the last marked when
    /// text is left over.
    #[test]
    fn reasons_wrap_at_spaces() {
        let why = "training diverged at epoch 1, step 48: the training loss reached 2.3e2";
        assert_eq!(
            wrap(why, 30, 2),
            [
                "training diverged at epoch 1,",
                "step 48: the training loss…"
            ]
        );
        assert_eq!(wrap("short", 30, 3), ["short"]);
        assert!(wrap("", 30, 3).is_empty());
        assert_eq!(
            cause("run x stopped: diverged at epoch 1: loss"),
            "diverged at epoch 1"
        );
    }

    /// A log axis is labelled at 1-2-3-5 steps inside its range, below 1 as well as above (the
    /// CIFAR-10 loss axis, 0.2 to 3.6, had labels at 1, 2 and 3 only).
    #[test]
    fn log_axes_are_labelled_across_their_range() {
        let got: Vec<String> = log_labels(0.2, 3.6).iter().map(tidy).collect();
        assert_eq!(got, ["0.2", "0.3", "0.5", "1", "2", "3"]);
        let got: Vec<String> = log_labels(0.04, 0.6).iter().map(tidy).collect();
        assert_eq!(got, ["0.05", "0.1", "0.2", "0.3", "0.5"]);
    }

    /// Epoch and layer axes are labelled at whole values only; values are labelled to three
    /// significant digits with no float noise.
    #[test]
    fn axis_labels_are_whole_numbers_and_tidy_values() {
        assert_eq!(whole(&2.0), "2");
        assert_eq!(whole(&1.1), "");
        assert_eq!(whole(&19.999_999_9), "20");
        for (v, want) in [
            (0.300_000_000_000_000_04, "0.3"),
            (0.25, "0.25"),
            (1.0, "1"),
            (2.0, "2"),
            (0.0123456, "0.0123"),
            (45.678, "45.7"),
            (1500.0, "1500"),
            (0.0, "0"),
        ] {
            assert_eq!(tidy(&v), want, "{v}");
        }
    }
}
