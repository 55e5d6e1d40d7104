//! Simulation of scheduling under a call budget (issues 6, 15 and 24). Run:
//! `cargo run --release -p pps-benches --bin simulate` (all libraries), or with
//! `-- --library busy|quiet|saturated` for one, and `--max-calls-per-day N` for a daily
//! ceiling on spare listings.
//!
//! Each library's report goes to `benches/SIMULATION-<library>.md`; after every run
//! `benches/SIMULATION-section.md`, the section of BENCHMARKS.md, is rewritten from the
//! library files present, so a library run alone still updates the section. The pieces
//! are in `pps_benches::sim`.

use pps_benches::machine;
use pps_benches::sim::report::{self, SUMMARY_MARK};
use pps_benches::sim::run::{self, Options};
use pps_benches::sim::{LIBRARIES, library};
use std::path::Path;
use std::time::Instant;

fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

fn main() {
    let which = arg("--library").unwrap_or_else(|| "all".to_owned());
    let opts = Options {
        max_calls_per_day: arg("--max-calls-per-day").and_then(|n| n.parse().ok()),
    };
    let names: Vec<&str> = match which.as_str() {
        "all" => LIBRARIES.to_vec(),
        one if LIBRARIES.contains(&one) => vec![one],
        other => {
            eprintln!(
                "unknown library {other:?}; use --library {} or all",
                LIBRARIES.join("|")
            );
            std::process::exit(2);
        }
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let machine = machine();
    for name in names {
        let started = Instant::now();
        let lib = library(name).expect("a known library");
        eprintln!(
            "{name}: {} folders, {} changes; simulating {} virtual days",
            lib.order.len(),
            lib.events.len(),
            (lib.measured + lib.tail) / 86_400
        );
        let out = run::run(&lib, opts, started);
        let rep = report::report(&lib, &out, opts, &machine);
        println!("{}", rep.markdown);
        eprintln!("{name}: {:.1} s of wall time", out.wall.as_secs_f64());
        write(&dir.join(report::file_name(&lib, opts)), &rep.markdown);
    }
    write(&dir.join("SIMULATION-section.md"), &section(dir));
}

fn write(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("could not write {}: {e}", path.display());
    }
}

/// BENCHMARKS.md's section: the method, a summary of every library, then each
/// library's report (and a capped run's, when there is one), from the files present.
fn section(dir: &Path) -> String {
    let mut files = Vec::new();
    for name in LIBRARIES {
        for suffix in ["", "-capped"] {
            if let Ok(text) =
                std::fs::read_to_string(dir.join(format!("SIMULATION-{name}{suffix}.md")))
            {
                files.push((suffix.is_empty(), text));
            }
        }
    }
    let rows: Vec<&str> = files
        .iter()
        .filter(|(plain, _)| *plain)
        .filter_map(|(_, t)| t.lines().find_map(|l| l.strip_prefix(SUMMARY_MARK)))
        .filter_map(|l| l.strip_suffix(" -->"))
        .collect();
    let mut s = String::from(METHOD);
    s.push_str(
        "| library | folders | changes | calls of the budget | most calls in a second (allowed) | pps mean delay | optimum | ratio | new titles p95 | active shows p95 | cold max | goals met | wall time |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    for (_, text) in &files {
        s.push('\n');
        s.push_str(text);
    }
    s
}

const METHOD: &str = "## Simulation: scheduling under a call budget (issues 6, 15 and 24)

Command: `cargo run --release -p pps-benches --bin simulate` runs the three libraries (or `-- --library \
busy|quiet|saturated` one of them); each writes `benches/SIMULATION-<library>.md`, and every run rewrites \
this section, `benches/SIMULATION-section.md`, from those files. Generated: edit the generator \
(`benches/src/sim/`), not the text.

How: each library lives in a `MemorySource` with a real library's history in its mtimes. **A cold start**: \
the engine records the baseline at the start and the measured period begins the next second, with no \
warm-up. The real engine runs on a `ManualClock`: every virtual second, the scheduled passes \
(`Engine::pass_due_spare`) get what a `CallBudget` of the library's rate holds, never more than the rate \
rounded up in one second (what the source's rate limit layer lets through); spare budget goes to spare \
listings. With two watches on one source, each lists its due folders and the spare budget goes to one \
watch a second, in turn. Quiet days follow the measured period so that every change can be found. The \
delay of a change is from the second it is made to the pass that reports it (at or above its path). A \
change is *active* when the folder whose listing shows it had another change in the 48 hours before \
(history before the start included), otherwise *cold*. Calls are counted from the `MemorySource`'s own \
call counter, per virtual second; the baseline's calls are not counted.

The optimum (docs/scheduling.md): folder i changes at rate λᵢ and is listed every Iᵢ seconds, a change \
waits Iᵢ/2 on average, and the budget is Σ 1/Iᵢ = R. Without bounds Iᵢ ∝ 1/√λᵢ and the best mean delay \
is (Σ√λᵢ)² / (2 R Σλᵢ). With pps's bounds, Iᵢ = clamp(√(2μ/λᵢ), base interval, ceiling), every folder \
counted (one that never changes sits at the ceiling and still costs 1/ceiling), μ found by bisection so \
that Σ 1/Iᵢ = R; the optimum is Σ λᵢ Iᵢ/2 / Σλᵢ, and the **ratio** is pps's mean delay over all the \
measured changes divided by it. λᵢ are the generator's true rates over the measured period: a change \
aimed at one folder (an airing show's season, the root a new film lands in) counts for the folder whose \
listing shows it; a change placed in a folder picked at random (an old film getting subtitles, an edit) \
is spread over every folder it could have landed in, by probability. F counts the folders at the start \
and those created during the period. pps can beat this optimum (a ratio under 1): it is the best \
*periodic* schedule for Poisson changes, and pps also has hints (a parent's listing shows a child's mtime \
move, a new folder is listed at once) and cadences.

The goals of issue 24 are reported as pass or miss, not asserted: mean delay at most 1.25 x the bounded \
optimum; new titles (in a watch root, a genre or a TV region folder) p95 at most the base interval + 1 \
minute; active shows' episodes and subtitles p95 at most 5 minutes; cold changes at most the ceiling + \
one pass (folders / R); never more listings in a second than the rate allows, nor in the period than the \
budget.

";
