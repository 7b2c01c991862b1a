//! SVG plots of latency and bytes against the ReLU count, with DELPHI's per-ReLU figures drawn as
//! reference lines.

use crate::models::ModelKind;
use crate::report::{
    Results, DELPHI_OFFLINE_KB_PER_RELU, DELPHI_ONLINE_KB_PER_RELU, DELPHI_ONLINE_US_PER_RELU,
};
use crate::run::Run;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// A quantity of a run to plot.
type Value<'a> = &'a dyn Fn(&Run) -> f64;

/// The files written, with what each shows.
pub const FILES: [(&str, &str); 2] = [
    (
        "latency_vs_relus.svg",
        "online and offline latency against the ReLU count, per network profile",
    ),
    (
        "bytes_vs_relus.svg",
        "offline (HE / OT / GC split) and online traffic against the ReLU count",
    ),
];

/// The browser mode's plot, written when the results have browser runs.
pub const BROWSER_FILE: (&str, &str) = (
    "native_vs_browser_latency.svg",
    "online and offline latency against the ReLU count: native client vs the page in headless Chromium (both over 127.0.0.1)",
);

/// A plot that could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("plot {file}: {message}")]
pub struct PlotError {
    /// The file.
    pub file: String,
    /// What went wrong.
    pub message: String,
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// One line on a panel: points (ReLUs in thousands, value).
struct Series {
    label: String,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    /// Only markers (trained models are not one family).
    markers_only: bool,
}

/// A reference line `y = slope · x` (x in thousands of ReLUs).
struct Reference {
    label: String,
    slope: f64,
}

struct Panel {
    title: String,
    y_desc: String,
    series: Vec<Series>,
    references: Vec<Reference>,
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    panel: &Panel,
    x_max: f64,
) -> Result<(), String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let data_max = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let ref_max = panel
        .references
        .iter()
        .map(|r| r.slope * x_max)
        .fold(0.0f64, f64::max);
    let y_max = (data_max.max(ref_max) * 1.08).max(1e-9);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("ReLUs (thousands)")
        .y_desc(panel.y_desc.as_str())
        .draw()
        .map_err(|x| e(&x))?;
    for s in &panel.series {
        let color = s.color;
        if !s.markers_only {
            chart
                .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))
                .map_err(|x| e(&x))?
                .label(s.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        let markers = chart
            .draw_series(
                s.points
                    .iter()
                    .map(|&p| Circle::new(p, if s.markers_only { 5 } else { 3 }, color.filled())),
            )
            .map_err(|x| e(&x))?;
        if s.markers_only {
            markers
                .label(s.label.as_str())
                .legend(move |(x, y)| Circle::new((x + 9, y), 4, color.filled()));
        }
    }
    for r in &panel.references {
        let style = BLACK.stroke_width(1);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, 0.0), (x_max, r.slope * x_max)],
                6,
                4,
                style,
            ))
            .map_err(|x| e(&x))?
            .label(r.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|x| e(&x))?;
    Ok(())
}

fn write_panels(path: &Path, panels: &[Panel], x_max: f64) -> Result<(), PlotError> {
    let file = path.display().to_string();
    let err = |message: String| PlotError {
        file: file.clone(),
        message,
    };
    let root = SVGBackend::new(path, (640 * panels.len() as u32, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| err(x.to_string()))?;
    let areas = root.split_evenly((1, panels.len()));
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel, x_max).map_err(err)?;
    }
    root.present().map_err(|x| err(x.to_string()))?;
    Ok(())
}

/// Writes every plot of [`FILES`] into `out`.
pub fn write_all(r: &Results, out: &Path) -> Result<(), PlotError> {
    let kind = |model: &str| {
        r.models
            .iter()
            .find(|m| m.name == model)
            .map_or(ModelKind::Trained, |m| m.kind)
    };
    let x_max = r
        .runs
        .iter()
        .map(|run| run.relus as f64 / 1000.0)
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.05;
    // Generated models per network as lines, trained models as markers.
    let by_network = |value: Value<'_>| -> Vec<Series> {
        let mut out = Vec::new();
        for (i, net) in r.settings.networks.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            for trained in [false, true] {
                let mut points: Vec<(f64, f64)> = r
                    .runs
                    .iter()
                    .filter(|run| {
                        run.network.name == net.name
                            && (kind(&run.model) == ModelKind::Trained) == trained
                    })
                    .map(|run| (run.relus as f64 / 1000.0, value(run)))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                if !points.is_empty() {
                    out.push(Series {
                        label: if trained {
                            format!("{} (trained models)", net.name)
                        } else {
                            format!("{} (CNet1 sweep)", net.name)
                        },
                        points,
                        color,
                        markers_only: trained,
                    });
                }
            }
        }
        out
    };
    let latency = [
        Panel {
            title: "Online latency".into(),
            y_desc: "seconds".into(),
            series: by_network(&|run| run.online_s),
            references: vec![Reference {
                label: format!("DELPHI {DELPHI_ONLINE_US_PER_RELU} µs/ReLU"),
                slope: DELPHI_ONLINE_US_PER_RELU * 1e-6 * 1000.0,
            }],
        },
        Panel {
            title: "Offline latency".into(),
            y_desc: "seconds".into(),
            series: by_network(&|run| run.offline_s),
            references: vec![],
        },
    ];
    write_panels(&out.join(FILES[0].0), &latency, x_max)?;

    // Bytes do not depend on the network: the first profile's runs.
    let first = r
        .settings
        .networks
        .first()
        .map(|n| n.name.clone())
        .unwrap_or_default();
    let bytes_series = |parts: &[(&str, Value<'_>)]| -> Vec<Series> {
        let mut out = Vec::new();
        for (i, (label, value)) in parts.iter().enumerate() {
            for trained in [false, true] {
                let mut points: Vec<(f64, f64)> = r
                    .runs
                    .iter()
                    .filter(|run| {
                        run.network.name == first
                            && (kind(&run.model) == ModelKind::Trained) == trained
                    })
                    .map(|run| (run.relus as f64 / 1000.0, value(run) / 1e6))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                if !points.is_empty() {
                    out.push(Series {
                        label: if trained {
                            format!("{label} (trained)")
                        } else {
                            label.to_string()
                        },
                        points,
                        color: COLORS[i % COLORS.len()],
                        markers_only: trained,
                    });
                }
            }
        }
        out
    };
    let bytes = [
        Panel {
            title: "Offline traffic".into(),
            y_desc: "MB (both directions)".into(),
            series: bytes_series(&[
                ("total", &|run| run.offline_up + run.offline_down),
                ("garbled circuits", &|run| run.gc_bytes),
                ("HE", &|run| run.he_bytes),
                ("OT", &|run| run.ot_bytes),
            ]),
            references: vec![Reference {
                label: format!("DELPHI {DELPHI_OFFLINE_KB_PER_RELU} KB/ReLU"),
                slope: DELPHI_OFFLINE_KB_PER_RELU * 1000.0 * 1000.0 / 1e6,
            }],
        },
        Panel {
            title: "Online traffic".into(),
            y_desc: "MB (both directions)".into(),
            series: bytes_series(&[("total", &|run| run.online_up + run.online_down)]),
            references: vec![Reference {
                label: format!("DELPHI {DELPHI_ONLINE_KB_PER_RELU} KB/ReLU"),
                slope: DELPHI_ONLINE_KB_PER_RELU * 1000.0 * 1000.0 / 1e6,
            }],
        },
    ];
    write_panels(&out.join(FILES[1].0), &bytes, x_max)?;
    if !r.browser.is_empty() {
        write_browser(r, out)?;
    }
    Ok(())
}

/// Native (loopback) vs browser latency against the ReLU count.
fn write_browser(r: &Results, out: &Path) -> Result<(), PlotError> {
    let x_max = r
        .browser
        .iter()
        .map(|b| b.relus as f64 / 1000.0)
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.05;
    let series = |value: Value<'_>| -> Vec<Series> {
        let mut native: Vec<(f64, f64)> = r
            .browser
            .iter()
            .filter_map(|b| {
                r.runs
                    .iter()
                    .find(|n| n.model == b.model && n.network.name == "loopback")
            })
            .map(|n| (n.relus as f64 / 1000.0, value(n)))
            .collect();
        let mut browser: Vec<(f64, f64)> = r
            .browser
            .iter()
            .map(|b| (b.relus as f64 / 1000.0, value(&b.run)))
            .collect();
        native.sort_by(|a, b| a.0.total_cmp(&b.0));
        browser.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut out = Vec::new();
        for (label, points, color) in [
            ("native client (loopback)", native, COLORS[0]),
            ("browser: page + wasm worker (Chromium)", browser, COLORS[1]),
        ] {
            if !points.is_empty() {
                out.push(Series {
                    label: label.into(),
                    points,
                    color,
                    markers_only: false,
                });
            }
        }
        out
    };
    let panels = [
        Panel {
            title: "Online latency, native vs browser".into(),
            y_desc: "seconds".into(),
            series: series(&|run| run.online_s),
            references: vec![],
        },
        Panel {
            title: "Offline latency, native vs browser".into(),
            y_desc: "seconds".into(),
            series: series(&|run| run.offline_s),
            references: vec![],
        },
    ];
    write_panels(&out.join(BROWSER_FILE.0), &panels, x_max)
}
