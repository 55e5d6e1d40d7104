//! The older strategies, computed from the same change log: a walk that lists every
//! folder back to back at the budget's rate, spending three calls per folder (the first
//! system) or one (a plain walk). A change is found when the walk next lists the folder
//! that shows it.

use super::library::{Library, T0, shown_by};
use super::run::Found;
use std::collections::HashMap;

/// When a walk of `per_folder` calls a folder, starting at the start, finds each
/// measured change (`active` flags in event order, as [`Library::classify`]).
pub fn walk(lib: &Library, active: &[bool], per_folder: u64) -> Vec<Found> {
    let pos: HashMap<&str, u64> = lib
        .order
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), i as u64))
        .collect();
    let r = lib.rate.per_second();
    // Seconds for one folder and for the whole walk.
    let step = per_folder as f64 / r;
    let pass = lib.order.len() as f64 * step;
    let measured = lib.measured_range();
    let mut out = Vec::new();
    for (e, a) in lib.events.iter().zip(active) {
        if !measured.contains(&e.t) {
            continue;
        }
        // The nearest folder of the initial tree at or above the one that shows it (a
        // folder created later is walked where its ancestor is).
        let mut f = shown_by(&e.path);
        let p = loop {
            if let Some(p) = pos.get(f.as_str()) {
                break *p;
            }
            f = shown_by(&f);
        };
        let offset = p as f64 * step;
        let rel = (e.t - T0) as f64;
        let k = ((rel - offset) / pass).ceil().max(0.0);
        let at = T0 as f64 + k * pass + offset;
        out.push(Found {
            t: e.t,
            kind: e.kind,
            active: *a,
            delay: (at - e.t as f64).ceil() as i64,
            found: true,
        });
    }
    out
}
