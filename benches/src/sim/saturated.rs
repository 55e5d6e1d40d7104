//! The saturated library of issue 24: a library being imported, every folder's entries
//! written within the last hour, so the folders due at the base interval ask for far
//! more listings than the budget (5 calls a second, base interval 2 s). An airing show
//! gets an episode every few minutes from the start: the case of a folder just seen
//! changing that starves behind a full queue.

use super::library::{Builder, Class, DAY, Event, Kind, Library, Op, Pool, Rate, T0};
use super::rng::Rng;
use pps_core::Schedule;
use std::time::Duration;

/// One measured day: at five listings a second a day is 432,000 listings, and the whole
/// run of three libraries must stay within minutes of wall time.
const MEASURED_DAYS: i64 = 1;
const TAIL_DAYS: i64 = 1;
const SEED: u64 = 0x5EED_0025;
const TV: &str = "/lib/TV";
/// About 2,300 folders: every pass of a saturated schedule considers every due folder,
/// so the wall time grows with the library.
const SHOWS: usize = 500;
/// How long the airing show keeps getting episodes, from the start.
const AIRING_FOR: i64 = 8 * 3600;
const AIRING: &str = "/lib/TV/Airing Show (2027)/Season 01";
/// Seconds between two new shows, and between two files added to fresh seasons.
const NEW_SHOW_EVERY: i64 = 15 * 60;
const UPLOAD_EVERY: i64 = 2 * 60;

const AIRING_EP: Kind = Kind::new("airing episode", Class::Show);
const AIRING_SUBS: Kind = Kind::new("airing episode's subtitles", Class::Show);
const NEW_SHOW: Kind = Kind::new("new show", Class::NewTitle);
const UPLOAD: Kind = Kind::new("file added to a fresh season", Class::Other);

fn build(rng: &mut Rng) -> (Builder, Vec<String>) {
    let mut b = Builder::default();
    let mut seasons = Vec::new();
    for i in 0..SHOWS {
        let show = format!("{TV}/Show {i:04} ({})", 1990 + rng.below(35));
        // The show was uploaded in the last hour, its episodes seconds apart.
        let mut t = T0 - rng.range(30, 3600);
        for s in 1..=1 + rng.below(6) {
            let season = format!("{show}/Season {s:02}");
            for e in 1..=4 + rng.below(7) {
                b.file(&format!("{season}/S{s:02}E{e:02}.mkv"), 1 << 30, t);
                t = (t + rng.range(1, 20)).min(T0);
            }
            seasons.push(season);
        }
    }
    // The airing show: its first episodes in the last hour.
    for e in 1..=3 {
        let t = T0 - 3600 + e * 900 + rng.range(0, 300);
        b.file(&format!("{AIRING}/S01E{e:02}.mkv"), 1 << 30, t);
        b.file(&format!("{AIRING}/S01E{e:02}.srt"), 40_000, t + 90);
    }
    (b, seasons)
}

fn events(seasons: &[String], rng: &mut Rng) -> Vec<Event> {
    let event = |t, ops, path, kind, pool| Event {
        t,
        ops,
        path,
        kind,
        pool,
    };
    let mut out = Vec::new();
    // An episode every 3 to 8 minutes, its subtitles 1 to 3 minutes after it.
    let mut t = T0 + rng.range(60, 300);
    let mut e = 4;
    while t < T0 + AIRING_FOR {
        let ep = format!("{AIRING}/S01E{e:02}.mkv");
        out.push(event(
            t,
            vec![Op::Write(ep.clone(), 1 << 30)],
            ep,
            AIRING_EP,
            None,
        ));
        let sub = format!("{AIRING}/S01E{e:02}.srt");
        out.push(event(
            t + rng.range(60, 180),
            vec![Op::Write(sub.clone(), 40_000)],
            sub,
            AIRING_SUBS,
            None,
        ));
        t += rng.range(180, 480);
        e += 1;
    }
    let end = T0 + MEASURED_DAYS * DAY;
    // The import goes on: a new show about every 15 minutes, and a file added to a
    // random fresh season about every 2 minutes.
    let mut n = 0;
    let mut t = T0 + rng.range(0, NEW_SHOW_EVERY);
    while t < end {
        let show = format!("{TV}/New Show {n:04}");
        let ops = (1..=1 + rng.below(3))
            .map(|e| Op::Write(format!("{show}/Season 01/S01E{e:02}.mkv"), 1 << 30))
            .collect();
        out.push(event(t, ops, show, NEW_SHOW, None));
        t += rng.range(NEW_SHOW_EVERY / 2, NEW_SHOW_EVERY * 3 / 2);
        n += 1;
    }
    let mut t = T0 + rng.range(0, UPLOAD_EVERY);
    let mut k = 0;
    while t < end {
        let file = format!("{}/extra-{k:05}.nfo", rng.pick(seasons));
        out.push(event(
            t,
            vec![Op::Write(file.clone(), 2000)],
            file,
            UPLOAD,
            Some(0),
        ));
        t += rng.range(UPLOAD_EVERY / 2, UPLOAD_EVERY * 3 / 2);
        k += 1;
    }
    out.sort_by_key(|e| e.t);
    out
}

/// The saturated library and its day.
pub fn library() -> Library {
    let mut rng = Rng(SEED);
    let (b, seasons) = build(&mut rng);
    let events = events(&seasons, &mut rng);
    let roots = vec!["/lib".to_owned()];
    let (source, order, history) = b.finish(&roots);
    let description = format!(
        "A library being imported: {} folders under one watch on `/lib` ({SHOWS} shows of 1 to 6 \
seasons in `/lib/TV`), every folder's entries written within the hour before the start, so \
that right after the baseline the schedule asks for many times the budget. An airing show \
(`{AIRING}`, three episodes in the last hour) gets an episode every 3 to 8 minutes for the \
first {} hours, each with its subtitles 1 to 3 minutes later; the import goes on all day: a new \
show with 1 to 3 episodes in `/lib/TV` about every 15 minutes, a file added to a random fresh \
season about every 2 minutes. Schedule: base interval 2 s, ceiling 24 h (active ceiling 1 h); \
budget 5 calls a second. **One measured day** (and one quiet day), not seven: at five listings a \
second a simulated day costs about as much wall time as the busy library's week.",
        order.len(),
        AIRING_FOR / 3600,
    );
    Library {
        name: "saturated",
        title: "saturated: demand far above the budget".to_owned(),
        description,
        source,
        roots,
        schedule: Schedule::default()
            .with_base_interval(Duration::from_secs(2))
            .with_max_interval(Duration::from_secs(24 * 3600)),
        rate: Rate {
            calls: 5,
            per_secs: 1,
        },
        measured: MEASURED_DAYS * DAY,
        tail: TAIL_DAYS * DAY,
        history,
        events,
        pools: vec![Pool::uniform(seasons)],
        order,
    }
}
