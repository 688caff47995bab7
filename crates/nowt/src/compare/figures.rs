//! The report's figures, drawn as SVG by `plotters`: test error and train loss against epoch
//! (one line per rule, a band over seeds), `∠(W, M)` of every layer against epoch (one panel per
//! rule, lines from blue at the bottom layer to red at the top, as in the paper's angle
//! figures), and the final angles against layer depth.

use std::path::Path;

use crate::rules::RuleKind;
use crate::train::EpochRecord;
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::Group;

const SIZE: (u32, u32) = (900, 560);
const FONT: &str = "sans-serif";

/// One colour per rule, the same in every figure and distinct for up to 16 rules: the paper's
/// five first (backprop black), then the rest of the Tableau palette and its light shades in
/// registry order.
fn rule_colour(rule: RuleKind) -> RGBColor {
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
    let i = RuleKind::ALL.iter().position(|&k| k == rule).unwrap_or(0);
    PALETTE[i % PALETTE.len()]
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

/// A legend entry's mark: a short line in the series' colour.
fn legend_line(colour: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], colour.stroke_width(2))
}

/// Draws `chart`'s legend at `position` on a white, framed box.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
    file: &Path,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(fail(file))
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
    let curves: Vec<_> = groups
        .iter()
        .map(|g| (g.rule, g.title(), per_epoch(g, f)))
        .collect();
    let pts = curves.iter().flat_map(|(_, _, c)| c.iter());
    let x_max = pts.clone().map(|p| p.0).fold(1.0, f64::max);
    let y_lo = pts.clone().map(|p| p.2).fold(f64::INFINITY, f64::min);
    let y_hi = pts.map(|p| p.3).fold(f64::NEG_INFINITY, f64::max);
    let (y_lo, y_hi) = if y_lo.is_finite() {
        (y_lo, y_hi)
    } else {
        (0.0, 1.0)
    };
    let root = SVGBackend::new(file, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(fail(file))?;
    let mut builder = ChartBuilder::on(&root);
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
            for (rule, title, c) in &curves {
                let colour = rule_colour(*rule);
                if c.iter().any(|p| p.2 != p.3) {
                    let band: Vec<(f64, f64)> = c
                        .iter()
                        .map(|p| (p.0, p.3))
                        .chain(c.iter().rev().map(|p| (p.0, p.2)))
                        .collect();
                    chart
                        .draw_series(std::iter::once(Polygon::new(band, colour.mix(0.18))))
                        .map_err(fail(file))?;
                }
                chart
                    .draw_series(LineSeries::new(
                        c.iter().map(|p| (p.0, p.1)),
                        colour.stroke_width(2),
                    ))
                    .map_err(fail(file))?
                    .label(title.as_str())
                    .legend(legend_line(colour));
                // A rule that stopped after one epoch is a point, which a line does not draw.
                if let [p] = c.as_slice() {
                    chart
                        .draw_series(std::iter::once(Circle::new((p.0, p.1), 4, colour.filled())))
                        .map_err(fail(file))?;
                }
            }
            legend(&mut chart, SeriesLabelPosition::UpperRight, file)?;
        }};
    }
    if log_y {
        let lo = (y_lo.max(1e-6) / 1.5).max(1e-6);
        draw!(builder
            .build_cartesian_2d(x_range, (lo..(y_hi * 1.5).max(lo * 10.0)).log_scale())
            .map_err(fail(file))?);
    } else {
        let pad = ((y_hi - y_lo) * 0.05).max(0.5);
        draw!(builder
            .build_cartesian_2d(x_range, (y_lo - pad).max(0.0)..y_hi + pad)
            .map_err(fail(file))?);
    }
    root.present().map_err(fail(file))?;
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
        // Its error's second link is the cause ("training diverged at epoch 1, step 48"); the
        // first names the run.
        let stopped = run.failed.as_ref().map_or(String::new(), |why| {
            let cause = why.split(": ").nth(1).unwrap_or(why);
            let short: String = cause.chars().take(48).collect();
            let more = if cause.chars().count() > 48 {
                "…"
            } else {
                ""
            };
            format!(" — stopped: {short}{more}")
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

/// Final `∠(W, M)` and `∠(δ, δbp)` against layer depth, one line per rule (first seed).
fn depth_panels(groups: &[Group], file: &Path) -> Result<()> {
    let root = SVGBackend::new(file, (1100, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(fail(file))?;
    let halves = root.split_evenly((1, 2));
    type Pick = fn(&crate::metrics::LayerRecord) -> Option<f64>;
    let picks: [(&str, Pick); 2] = [
        ("final ∠(W, M) against depth", |l| l.weight_angle_deg),
        ("final ∠(δ, δbp) against depth", |l| l.delta_angle_deg),
    ];
    for ((title, pick), area) in picks.into_iter().zip(halves) {
        let layers = groups
            .iter()
            .filter_map(|g| g.runs[0].epochs.last().map(|e| e.layers.len()))
            .max()
            .unwrap_or(1);
        let mut chart = ChartBuilder::on(&area)
            .caption(title, (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(1f64..(layers as f64).max(2.0), 0f64..95f64)
            .map_err(fail(file))?;
        chart
            .configure_mesh()
            .x_desc("weight layer (1 = bottom)")
            .y_desc("degrees")
            .x_label_formatter(&whole)
            .draw()
            .map_err(fail(file))?;
        for g in groups {
            let Some(last) = g.runs[0].epochs.last() else {
                continue;
            };
            let colour = rule_colour(g.rule);
            let pts: Vec<(f64, f64)> = last
                .layers
                .iter()
                .enumerate()
                .filter_map(|(i, l)| Some(((i + 1) as f64, pick(l)?)))
                .collect();
            // Each layer marked, so a rule with one layer that carries an error still shows.
            let marks = pts.iter().map(|&p| Circle::new(p, 3, colour.filled()));
            chart.draw_series(marks).map_err(fail(file))?;
            chart
                .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
                .map_err(fail(file))?
                .label(g.title())
                .legend(legend_line(colour));
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft, file)?;
    }
    root.present().map_err(fail(file))?;
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
            let v = super::report::val_errors(g);
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
    let root = SVGBackend::new(file, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(fail(file))?;
    let n = settings.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
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
    for &rule in &RuleKind::ALL {
        let mine: Vec<_> = points.iter().filter(|p| p.0 == rule).collect();
        if mine.is_empty() {
            continue;
        }
        let colour = rule_colour(rule);
        for p in &mine {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(p.1, p.3), (p.1, p.4)],
                    colour.stroke_width(1),
                )))
                .map_err(fail(file))?;
        }
        chart
            .draw_series(LineSeries::new(
                mine.iter().map(|p| (p.1, p.2)),
                colour.stroke_width(2),
            ))
            .map_err(fail(file))?
            .label(rule.name())
            .legend(legend_line(colour));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight, file)?;
    root.present().map_err(fail(file))?;
    Ok(())
}

/// Draws every figure into `dir` (`groups`: the table's rows; `all`: every group, a sweep's
/// points included); returns `(file name, caption)` of each.
pub fn draw(groups: &[Group], all: &[Group], dir: &Path) -> Result<Vec<(String, String)>> {
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
    if all.iter().any(|g| !g.setting.is_empty()) {
        sweep_figure(
            all,
            &add("sweep.svg", "Validation error at each setting of the sweep"),
        )?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule of the registry has its own colour (backprop and activation alignment were
    /// both black).
    #[test]
    fn every_rule_has_its_own_colour() {
        let colours: Vec<_> = RuleKind::ALL.iter().map(|&r| rule_colour(r)).collect();
        for (i, a) in colours.iter().enumerate() {
            for (j, b) in colours.iter().enumerate().skip(i + 1) {
                assert_ne!(a, b, "{:?} and {:?}", RuleKind::ALL[i], RuleKind::ALL[j]);
            }
        }
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
