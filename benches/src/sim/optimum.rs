//! The best mean detection delay any listing schedule could reach with the true change
//! rates known (docs/scheduling.md): the yardstick pps's mean delay is divided by.
//!
//! Folder i changes at rate λᵢ and is listed every Iᵢ seconds; a change waits Iᵢ/2 on
//! average, so the mean delay over all changes is Σ λᵢ Iᵢ/2 / Σ λᵢ, under the budget
//! Σ 1/Iᵢ = R. Lagrange gives Iᵢ = √(2μ/λᵢ): without bounds the optimum is
//! (Σ √λᵢ)² / (2 R Σ λᵢ). With pps's bounds every Iᵢ is clamped to [base, max] (a folder
//! that never changes is listed at the ceiling, and still costs 1/max of the budget) and
//! μ is found by bisection so the clamped intervals spend exactly R.

use super::library::{Library, shown_by};
use std::collections::{BTreeMap, BTreeSet};

/// The unbounded optimum mean delay in seconds: (Σ √λᵢ)² / (2 R Σ λᵢ). Folders with no
/// changes cost nothing here (their interval is infinite). `None` without changes.
pub fn unbounded(rates: &[f64], r: f64) -> Option<f64> {
    let sum: f64 = rates.iter().sum();
    if sum <= 0.0 || r <= 0.0 {
        return None;
    }
    let roots: f64 = rates.iter().map(|l| l.sqrt()).sum();
    Some(roots * roots / (2.0 * r * sum))
}

/// The optimum under bounds, and how it spends the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounded {
    /// The mean delay over all changes, seconds.
    pub mean_delay: f64,
    /// Folders listed at the base interval.
    pub at_base: usize,
    /// Folders listed at the ceiling (those that never change among them).
    pub at_max: usize,
    /// Listings a second the optimum spends: R, unless every changing folder is
    /// already at the base interval with budget to spare.
    pub spent: f64,
}

/// Iᵢ = √(2μ/λᵢ) clamped to [base, max]; a folder that never changes sits at max.
fn interval(rate: f64, mu: f64, base: f64, max: f64) -> f64 {
    if rate <= 0.0 {
        return max;
    }
    (2.0 * mu / rate).sqrt().clamp(base, max)
}

fn spend(rates: &[f64], mu: f64, base: f64, max: f64) -> f64 {
    rates
        .iter()
        .map(|&l| 1.0 / interval(l, mu, base, max))
        .sum()
}

/// The optimum mean delay with every interval in [base, max] seconds and a budget of
/// `r` listings a second over every folder of `rates` (the zeros included). `None`
/// without changes, or when even listing every folder at the ceiling costs more than
/// `r` (no schedule within the bounds fits the budget).
pub fn bounded(rates: &[f64], r: f64, base: f64, max: f64) -> Option<Bounded> {
    let sum: f64 = rates.iter().sum();
    let floor = rates.len() as f64 / max;
    if sum <= 0.0 || floor > r * (1.0 + 1e-12) {
        return None;
    }
    let positive = || rates.iter().copied().filter(|&l| l > 0.0);
    let hottest = positive().fold(0.0f64, f64::max);
    let coldest = positive().fold(f64::INFINITY, f64::min);
    // Below `lo` every changing folder is at the base interval, above `hi` every folder
    // is at the ceiling; the spend falls as μ grows, so bisect (on a log scale: μ spans
    // many orders of magnitude between a daily and a yearly folder).
    let lo = base * base * coldest / 2.0;
    let hi = max * max * hottest / 2.0;
    let mu = if spend(rates, lo, base, max) <= r {
        lo
    } else {
        let (mut a, mut b) = (lo.ln(), hi.ln());
        for _ in 0..200 {
            let m = 0.5 * (a + b);
            if spend(rates, m.exp(), base, max) > r {
                a = m;
            } else {
                b = m;
            }
        }
        b.exp()
    };
    let intervals: Vec<f64> = rates.iter().map(|&l| interval(l, mu, base, max)).collect();
    let weighted: f64 = rates.iter().zip(&intervals).map(|(l, i)| l * i / 2.0).sum();
    let near = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b;
    Some(Bounded {
        mean_delay: weighted / sum,
        at_base: intervals.iter().filter(|&&i| near(i, base)).count(),
        at_max: intervals.iter().filter(|&&i| near(i, max)).count(),
        spent: intervals.iter().map(|i| 1.0 / i).sum(),
    })
}

/// Each folder's true change rate (changes a second) over the measured period, from the
/// generator: a change aimed at one folder (an airing show's season, the root a new
/// film lands in) counts for the folder whose listing shows it; a change placed in a
/// folder picked at random from a pool (an old film getting subtitles) is spread over
/// the pool by each folder's probability. `folders` are every folder of the watches
/// (those that never change get rate 0); a folder that shows a change and is not among
/// them is added.
pub fn rates(lib: &Library, folders: &BTreeSet<String>) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = folders.iter().map(|f| (f.clone(), 0.0)).collect();
    let period = lib.measured as f64;
    let measured = lib.measured_range();
    for e in lib.events.iter().filter(|e| measured.contains(&e.t)) {
        match e.pool {
            Some(p) => {
                for (f, w) in &lib.pools[p].folders {
                    *out.entry(f.clone()).or_default() += w / period;
                }
            }
            None => *out.entry(shown_by(&e.path)).or_default() += 1.0 / period,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn equal_rates_without_bounds_give_f_over_2r() {
        // Two folders, equal rates, R = 0.5: each listed every F/R = 4 s, a change waits
        // 2 s on average = F/(2R).
        let rates = [0.01, 0.01];
        assert!(close(unbounded(&rates, 0.5).unwrap(), 2.0));
        let b = bounded(&rates, 0.5, 0.001, 1e9).unwrap();
        assert!(close(b.mean_delay, 2.0), "{b:?}");
        assert!(close(b.spent, 0.5));
    }

    #[test]
    fn the_square_root_law_without_bounds() {
        // λ = (4, 1), R = 1: I ∝ 1/√λ, so I = (c/2, c) with 2/c + 1/c = 1, c = 3; the
        // mean delay is (4·1.5/2 + 1·3/2)/5 = 0.9 = (2+1)²/(2·1·5).
        let rates = [4.0, 1.0];
        assert!(close(unbounded(&rates, 1.0).unwrap(), 0.9));
        assert!(close(
            bounded(&rates, 1.0, 1e-6, 1e9).unwrap().mean_delay,
            0.9
        ));
    }

    #[test]
    fn the_base_interval_binds() {
        // λ = (100, 1), R = 1: unbounded I = (1.1, 11), but the base is 2 s. Clamped, the
        // hot folder takes 1/2 of the budget and the other the remaining 1/2: I = (2, 2),
        // mean delay (100·1 + 1·1)/101 = 1 instead of the unbounded (10+1)²/(2·101).
        let rates = [100.0, 1.0];
        assert!(close(unbounded(&rates, 1.0).unwrap(), 121.0 / 202.0));
        let b = bounded(&rates, 1.0, 2.0, 1000.0).unwrap();
        assert!(close(b.mean_delay, 1.0), "{b:?}");
        assert_eq!(b.at_base, 2);
        assert!(close(b.spent, 1.0));
    }

    #[test]
    fn a_folder_that_never_changes_still_costs_its_ceiling() {
        // λ = (1, 0), R = 1, ceiling 10 s: the quiet folder takes 1/10, the other is
        // listed every 1/0.9 s: mean delay 1/1.8.
        let b = bounded(&[1.0, 0.0], 1.0, 0.1, 10.0).unwrap();
        assert!(close(b.mean_delay, 1.0 / 1.8), "{b:?}");
        assert_eq!(b.at_max, 1);
    }

    #[test]
    fn a_budget_beyond_every_folder_at_the_base_is_left_unspent() {
        let b = bounded(&[1.0, 1.0], 10.0, 1.0, 10.0).unwrap();
        assert!(close(b.mean_delay, 0.5));
        assert!(close(b.spent, 2.0));
    }

    #[test]
    fn no_schedule_fits_when_the_ceiling_alone_is_over_budget() {
        assert_eq!(bounded(&[1.0, 0.0, 0.0], 0.1, 1.0, 10.0), None);
        assert_eq!(bounded(&[0.0, 0.0], 1.0, 1.0, 10.0), None);
    }
}
