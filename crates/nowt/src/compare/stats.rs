//! Whether two rules' results differ by more than seed noise: Welch's unequal-variance t-test on
//! the runs' final test errors (one value per seed).

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Welch's t-test of `mean(a) − mean(b)`:
///
/// ```text
/// t = (ā − b̄) / √(s_a²/n_a + s_b²/n_b),
/// ν = (s_a²/n_a + s_b²/n_b)² / ((s_a²/n_a)²/(n_a − 1) + (s_b²/n_b)²/(n_b − 1)),
/// p = 2 (1 − F_ν(|t|))   (two-sided)
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Welch {
    /// `ā − b̄`.
    pub diff: f64,
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom `ν`.
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// `None` unless both samples have at least two values (a variance needs two).
pub fn welch(a: &[f64], b: &[f64]) -> Option<Welch> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let moments = |v: &[f64]| {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
        (m, var / n, n)
    };
    let ((ma, va, na), (mb, vb, nb)) = (moments(a), moments(b));
    let diff = ma - mb;
    let se2 = va + vb;
    if se2 == 0.0 {
        // No spread on either side: any difference is exact, none is no evidence.
        let (t, p) = if diff == 0.0 {
            (0.0, 1.0)
        } else {
            (diff.signum() * f64::INFINITY, 0.0)
        };
        return Some(Welch {
            diff,
            t,
            df: na + nb - 2.0,
            p,
        });
    }
    let t = diff / se2.sqrt();
    let df = se2 * se2 / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
    let dist = StudentsT::new(0.0, 1.0, df).expect("ν > 0");
    let p = (2.0 * dist.sf(t.abs())).min(1.0);
    Some(Welch { diff, t, df, p })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two samples and SciPy's `t`, `ν` and `p` for them.
    type Case<'a> = (&'a [f64], &'a [f64], f64, f64, f64);

    /// Against SciPy 1.x `ttest_ind(a, b, equal_var=False)`.
    #[test]
    fn matches_scipys_welch_test() {
        let cases: [Case; 2] = [
            (
                &[15.70, 15.2, 16.1],
                &[14.37, 14.9, 14.1],
                3.450264830538258,
                3.958670722414147,
                0.026482282400442102,
            ),
            (
                &[1.0, 2.0, 3.0, 4.0],
                &[3.0, 4.0, 5.0, 6.0, 7.0],
                -2.6111648393354674,
                6.980769230769231,
                0.03493878235996401,
            ),
        ];
        for (a, b, t, df, p) in cases {
            let w = welch(a, b).unwrap();
            assert!((w.t - t).abs() < 1e-12, "t {} vs {t}", w.t);
            assert!((w.df - df).abs() < 1e-9, "ν {} vs {df}", w.df);
            assert!((w.p - p).abs() < 1e-9, "p {} vs {p}", w.p);
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            assert!((w.diff - (mean(a) - mean(b))).abs() < 1e-12);
        }
    }

    #[test]
    fn needs_two_values_a_side_and_handles_no_spread() {
        assert_eq!(welch(&[1.0], &[2.0, 3.0]), None);
        assert_eq!(welch(&[1.0, 2.0], &[3.0]), None);
        assert_eq!(welch(&[2.0, 2.0], &[2.0, 2.0]).unwrap().p, 1.0);
        let w = welch(&[1.0, 1.0], &[2.0, 2.0]).unwrap();
        assert_eq!((w.p, w.t), (0.0, f64::NEG_INFINITY));
    }
}
