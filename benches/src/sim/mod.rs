//! The scheduling simulation behind `src/bin/simulate.rs` (issues 6, 15 and 24).
//!
//! Three synthetic libraries ([`busy`], [`quiet`], [`saturated`]), each a tree in a
//! `MemorySource` with its history in the mtimes and a generator of changes; [`run`]
//! drives the real engine over one on a manual clock under its call budget; [`optimum`]
//! computes the best mean delay any schedule could reach with the generator's true
//! rates; [`report`] writes the markdown. Deterministic: fixed seeds and [`rng`].

pub mod busy;
pub mod library;
pub mod optimum;
pub mod quiet;
pub mod report;
pub mod rng;
pub mod run;
pub mod saturated;
pub mod walk;

use library::Library;

/// The libraries by name, in report order.
pub const LIBRARIES: [&str; 3] = ["busy", "quiet", "saturated"];

/// Builds a library by name.
pub fn library(name: &str) -> Option<Library> {
    match name {
        "busy" => Some(busy::library()),
        "quiet" => Some(quiet::library()),
        "saturated" => Some(saturated::library()),
        _ => None,
    }
}
