//! Least-squares line fits: how time and bytes scale with the ReLU count.

use serde::Serialize;

/// Why a line cannot be fitted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FitError {
    /// `xs` and `ys` differ in length.
    #[error("{xs} x values but {ys} y values")]
    LengthMismatch {
        /// Number of x values.
        xs: usize,
        /// Number of y values.
        ys: usize,
    },
    /// Fewer than two distinct x values: the slope is undetermined.
    #[error("need at least two distinct x values, got {distinct}")]
    TooFewPoints {
        /// Distinct x values given.
        distinct: usize,
    },
    /// A NaN or infinite value.
    #[error("non-finite value at index {index}")]
    NonFinite {
        /// Where.
        index: usize,
    },
}

/// `y ≈ slope · x + intercept` by ordinary least squares.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Fit {
    /// dy/dx.
    pub slope: f64,
    /// y at x = 0.
    pub intercept: f64,
    /// Coefficient of determination (1 = every point on the line; 1 also when y is constant and
    /// the fit is exact).
    pub r2: f64,
    /// Points fitted.
    pub points: usize,
}

impl Fit {
    /// The fitted value at `x`.
    pub fn at(&self, x: f64) -> f64 {
        self.slope * x + self.intercept
    }
}

/// Fits a line through `(xs[i], ys[i])`.
pub fn fit_line(xs: &[f64], ys: &[f64]) -> Result<Fit, FitError> {
    if xs.len() != ys.len() {
        return Err(FitError::LengthMismatch {
            xs: xs.len(),
            ys: ys.len(),
        });
    }
    if let Some(index) = xs
        .iter()
        .zip(ys)
        .position(|(x, y)| !x.is_finite() || !y.is_finite())
    {
        return Err(FitError::NonFinite { index });
    }
    let mut distinct: Vec<f64> = xs.to_vec();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if distinct.len() < 2 {
        return Err(FitError::TooFewPoints {
            distinct: distinct.len(),
        });
    }
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let ss_tot: f64 = ys.iter().map(|y| (y - my) * (y - my)).sum();
    let ss_res: f64 = xs
        .iter()
        .zip(ys)
        .map(|(x, y)| {
            let e = y - (slope * x + intercept);
            e * e
        })
        .sum();
    let r2 = if ss_tot == 0.0 {
        if ss_res == 0.0 {
            1.0
        } else {
            0.0
        }
    } else {
        1.0 - ss_res / ss_tot
    };
    Ok(Fit {
        slope,
        intercept,
        r2,
        points: xs.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_line_is_recovered() {
        let xs = [6144.0, 12288.0, 24576.0, 49152.0, 86016.0];
        let ys: Vec<f64> = xs.iter().map(|x| 3.5e-6 * x + 0.25).collect();
        let f = fit_line(&xs, &ys).unwrap();
        assert!((f.slope - 3.5e-6).abs() < 1e-15, "{f:?}");
        assert!((f.intercept - 0.25).abs() < 1e-9, "{f:?}");
        assert!((f.r2 - 1.0).abs() < 1e-12);
        assert_eq!(f.points, 5);
        assert!((f.at(1000.0) - (3.5e-3 + 0.25)).abs() < 1e-12);
    }

    #[test]
    fn noisy_points_lower_r2_and_known_answer() {
        // Points (0,0), (1,1), (2,1), (3,2): slope 0.6, intercept 0.1, R² = 0.9.
        let f = fit_line(&[0.0, 1.0, 2.0, 3.0], &[0.0, 1.0, 1.0, 2.0]).unwrap();
        assert!((f.slope - 0.6).abs() < 1e-12);
        assert!((f.intercept - 0.1).abs() < 1e-12);
        assert!((f.r2 - 0.9).abs() < 1e-12);
    }

    #[test]
    fn degenerate_inputs_are_errors() {
        assert_eq!(
            fit_line(&[1.0, 2.0], &[1.0]),
            Err(FitError::LengthMismatch { xs: 2, ys: 1 })
        );
        assert_eq!(
            fit_line(&[5.0, 5.0, 5.0], &[1.0, 2.0, 3.0]),
            Err(FitError::TooFewPoints { distinct: 1 })
        );
        assert_eq!(
            fit_line(&[1.0, f64::NAN], &[1.0, 2.0]),
            Err(FitError::NonFinite { index: 1 })
        );
        let flat = fit_line(&[1.0, 2.0, 3.0], &[4.0, 4.0, 4.0]).unwrap();
        assert_eq!((flat.slope, flat.r2), (0.0, 1.0));
    }
}
