//! Accuracy-vs-ReLU Pareto report: an SVG plot (plotters) and a Markdown table, with the
//! published CryptoNAS points drawn for comparison.

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::SearchError;

/// One point of the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Model name.
    pub name: String,
    /// ReLU count.
    pub relus: u64,
    /// Test accuracy in percent.
    pub accuracy: f64,
    /// MACs, if known.
    pub macs: Option<u64>,
    /// Epochs trained, if known.
    pub epochs: Option<usize>,
}

/// Published CryptoNAS CIFAR-10 results (ReLUs, accuracy %).
pub const PUBLISHED: [(u64, f64); 4] = [
    (50_000, 90.0),
    (86_000, 91.5),
    (100_000, 92.18),
    (344_000, 94.24),
];

/// Indices of the Pareto-optimal points (no other point has ≤ ReLUs and > accuracy).
pub fn pareto_front(points: &[Point]) -> Vec<usize> {
    (0..points.len())
        .filter(|&i| {
            !points.iter().enumerate().any(|(j, q)| {
                j != i
                    && q.relus <= points[i].relus
                    && q.accuracy >= points[i].accuracy
                    && (q.relus < points[i].relus || q.accuracy > points[i].accuracy)
            })
        })
        .collect()
}

/// Markdown table of the points (sorted by ReLUs) and the published reference.
pub fn markdown(points: &[Point], dataset: &str) -> String {
    let mut sorted: Vec<&Point> = points.iter().collect();
    sorted.sort_by_key(|p| p.relus);
    let front = pareto_front(points);
    let mut s = format!("| model | ReLUs | MACs | epochs | test accuracy ({dataset}) | Pareto |\n|---|---:|---:|---:|---:|:---:|\n");
    for p in sorted {
        let idx = points.iter().position(|q| std::ptr::eq(q, p)).unwrap_or(0);
        s += &format!(
            "| {} | {} | {} | {} | {:.2} % | {} |\n",
            p.name,
            p.relus,
            p.macs
                .map_or("–".into(), |m| format!("{:.1} M", m as f64 / 1e6)),
            p.epochs.map_or("–".into(), |e| e.to_string()),
            p.accuracy,
            if front.contains(&idx) { "✓" } else { "" }
        );
    }
    s += "\nPublished CryptoNAS (CIFAR-10, 310+ epochs): ";
    s += &PUBLISHED
        .iter()
        .map(|(r, a)| format!("{a:.2} % @ {}K", r / 1000))
        .collect::<Vec<_>>()
        .join(", ");
    s += "\n";
    s
}

/// Renders the SVG plot as a string.
pub fn svg(points: &[Point], dataset: &str) -> Result<String, SearchError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (800, 520)).into_drawing_area();
        let err = |e: &dyn std::fmt::Display| SearchError::Invalid {
            what: format!("plotting: {e}"),
        };
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let all_r = points
            .iter()
            .map(|p| p.relus as f64 / 1000.0)
            .chain(PUBLISHED.iter().map(|p| p.0 as f64 / 1000.0));
        let all_a = points
            .iter()
            .map(|p| p.accuracy)
            .chain(PUBLISHED.iter().map(|p| p.1));
        let x_max = all_r.fold(0.0f64, f64::max) * 1.1 + 1.0;
        let a_min = all_a.clone().fold(100.0f64, f64::min);
        let a_max = all_a.fold(0.0f64, f64::max);
        let y_lo = (a_min - 2.0).floor().max(0.0);
        let y_hi = (a_max + 1.0).ceil().min(100.0);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Accuracy vs ReLU count — {dataset}"),
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..x_max, y_lo..y_hi)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("ReLUs (thousands)")
            .y_desc("test accuracy (%)")
            .draw()
            .map_err(|e| err(&e))?;
        let published: Vec<(f64, f64)> = PUBLISHED
            .iter()
            .map(|&(r, a)| (r as f64 / 1000.0, a))
            .collect();
        chart
            .draw_series(LineSeries::new(published.clone(), BLUE.stroke_width(1)))
            .map_err(|e| err(&e))?
            .label("CryptoNAS (published)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .draw_series(published.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
            .map_err(|e| err(&e))?;
        let mut ours: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.relus as f64 / 1000.0, p.accuracy))
            .collect();
        ours.sort_by(|a, b| a.0.total_cmp(&b.0));
        let front: Vec<(f64, f64)> = {
            let mut f: Vec<(f64, f64)> = pareto_front(points)
                .into_iter()
                .map(|i| (points[i].relus as f64 / 1000.0, points[i].accuracy))
                .collect();
            f.sort_by(|a, b| a.0.total_cmp(&b.0));
            f
        };
        chart
            .draw_series(LineSeries::new(front, RED.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label("this project (Pareto front)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        chart
            .draw_series(
                ours.iter()
                    .map(|&p| TriangleMarker::new(p, 6, RED.filled())),
            )
            .map_err(|e| err(&e))?;
        chart
            .draw_series(points.iter().map(|p| {
                Text::new(
                    p.name.clone(),
                    (p.relus as f64 / 1000.0 + x_max * 0.01, p.accuracy - 0.3),
                    ("sans-serif", 12),
                )
            }))
            .map_err(|e| err(&e))?;
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, relus: u64, accuracy: f64) -> Point {
        Point {
            name: name.into(),
            relus,
            accuracy,
            macs: Some(1_000_000),
            epochs: Some(10),
        }
    }

    #[test]
    fn front_and_report() {
        let pts = vec![
            p("a", 25_000, 80.0),
            p("b", 50_000, 85.0),
            p("c", 60_000, 84.0),
            p("d", 86_000, 87.0),
        ];
        assert_eq!(pareto_front(&pts), vec![0, 1, 3]);
        let md = markdown(&pts, "CIFAR-10");
        assert_eq!(md.matches("✓").count(), 3);
        assert!(md.contains("| c | 60000 |"));
        let s = svg(&pts, "CIFAR-10").unwrap();
        assert!(s.starts_with("<svg") && s.contains("CryptoNAS (published)"));
    }
}
