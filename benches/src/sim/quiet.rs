//! The quiet library of issue 24: about 3,000 folders, a few new films a week. Films sit
//! directly in the `/lib/Films` watch root (a new film is a new folder in the root), TV
//! shows with their seasons under a `/lib/TV` watch; the two watches share a 115 budget
//! (0.9 calls a second) and have the `interval = "10s"` users write, ceiling 24 h.

use super::library::{Builder, Class, DAY, Event, Kind, Library, Op, Pool, Rate, T0};
use super::rng::Rng;
use pps_core::Schedule;
use std::collections::HashSet;
use std::time::Duration;

const MEASURED_DAYS: i64 = 7;
const TAIL_DAYS: i64 = 2;
const SEED: u64 = 0x5EED_0024;
const FILMS: &str = "/lib/Films";
const TV: &str = "/lib/TV";
const OLD_FILMS: usize = 380;
const SHOWS: usize = 560;

const NEW_FILM: Kind = Kind::new("new film in the root", Class::NewTitle);
const NEW_FILM_NFO: Kind = Kind::new("new film's .nfo", Class::Other);
const NEW_SHOW: Kind = Kind::new("new show", Class::NewTitle);
const DAILY: Kind = Kind::new("daily episode", Class::Show);
const WEEKLY: Kind = Kind::new("weekly episode", Class::Show);
const EPISODE_SUBS: Kind = Kind::new("episode subtitles", Class::Show);
const NEW_SEASON: Kind = Kind::new("new season", Class::Other);
const OLD_SUBS: Kind = Kind::new("subtitles added to an old film", Class::Other);
const DELETE: Kind = Kind::new("deletion", Class::Other);
const RENAME: Kind = Kind::new("rename", Class::Other);

/// Changes per measured week.
const NEW_FILMS_A_WEEK: usize = 4;
const NEW_SHOWS_A_WEEK: usize = 1;
const NEW_SEASONS_A_WEEK: usize = 1;
const OLD_SUBS_A_WEEK: usize = 3;

struct Shape {
    films: Vec<String>,
    /// Old shows with their number of seasons.
    shows: Vec<(String, u32)>,
    /// The airing shows: (season folder, daily, hour of day, weekday).
    airing: Vec<(String, bool, i64, i64)>,
}

fn build(rng: &mut Rng) -> (Builder, Shape) {
    let mut b = Builder::default();
    let old = |rng: &mut Rng| T0 - rng.range(365 * DAY, 10 * 365 * DAY);
    let mut films = Vec::new();
    for i in 0..OLD_FILMS {
        let film = format!("{FILMS}/Film {i:04} ({})", 1950 + rng.below(75));
        let t = old(rng);
        b.file(&format!("{film}/film.mkv"), 4 << 30, t);
        b.file(&format!("{film}/film.nfo"), 2000, t);
        if i % 3 == 0 {
            b.file(&format!("{film}/film.srt"), 60_000, t);
        }
        films.push(film);
    }
    // The last eight weeks' films, about three a week: the root's children show the
    // rate at which films arrive.
    for n in 0..24 {
        let film = format!("{FILMS}/Recent Film {n:02} (2027)");
        let t = T0 - rng.range(DAY, 56 * DAY);
        b.file(&format!("{film}/film.mkv"), 4 << 30, t);
        b.file(&format!("{film}/film.nfo"), 2000, t + rng.range(120, 900));
    }
    let mut shows = Vec::new();
    for i in 0..SHOWS {
        let show = format!("{TV}/Show {i:03} ({})", 1990 + rng.below(35));
        let seasons = 1 + rng.below(6) as u32;
        let t = old(rng);
        for s in 1..=seasons {
            for e in 1..=6 + rng.below(7) {
                b.file(
                    &format!("{show}/Season {s:02}/S{s:02}E{e:02}.mkv"),
                    1 << 30,
                    t + i64::from(s) * 30 * DAY,
                );
            }
        }
        shows.push((show, seasons));
    }
    // Airing shows: 2 daily and 6 weekly, in their last season, with the last five days'
    // (or four weeks') episodes and subtitles already there.
    let mut airing = Vec::new();
    for k in 0..8usize {
        let (show, seasons) = &shows[(k * 53) % shows.len()];
        let season = format!("{show}/Season {seasons:02}");
        let hour = rng.range(0, 24) * 3600;
        let daily = k < 2;
        let weekday = rng.range(0, 7);
        let back: Vec<i64> = if daily {
            (1..=5).map(|d| -d).collect()
        } else {
            (1..=4).map(|w| weekday - 7 * w).collect()
        };
        for d in back {
            let t = T0 + d * DAY + hour + rng.range(0, 3600);
            b.file(&format!("{season}/P{}.mkv", -d), 1 << 30, t);
            b.file(
                &format!("{season}/P{}.srt", -d),
                40_000,
                t + rng.range(120, 600),
            );
        }
        airing.push((season, daily, hour, weekday));
    }
    (
        b,
        Shape {
            films,
            shows,
            airing,
        },
    )
}

fn events(lib: &Shape, rng: &mut Rng) -> (Vec<Event>, Vec<Pool>) {
    let week = MEASURED_DAYS * DAY;
    let at = |rng: &mut Rng| T0 + rng.range(0, week);
    let event = |t, ops, path, kind| Event {
        t,
        ops,
        path,
        kind,
        pool: None,
    };
    let airing: HashSet<&str> = lib
        .airing
        .iter()
        .filter_map(|(s, ..)| pps_core::path::parent(s))
        .collect();
    // Old titles are picked at random (each at most once, so a deleted film does not get
    // subtitles later): the pools spread those changes' rate over every candidate.
    let film_pool = Pool::uniform(lib.films.iter().cloned());
    let quiet_shows: Vec<&(String, u32)> = lib
        .shows
        .iter()
        .filter(|(s, _)| !airing.contains(s.as_str()))
        .collect();
    let show_pool = Pool::uniform(quiet_shows.iter().map(|(s, _)| s.clone()));
    let mut used: HashSet<usize> = HashSet::new();
    let mut unused = |rng: &mut Rng, n: usize| loop {
        let i = rng.below(n as u64) as usize;
        if used.insert(i) {
            break i;
        }
    };
    let mut out = Vec::new();
    for (season, daily, hour, weekday) in &lib.airing {
        for d in 0..MEASURED_DAYS {
            if !daily && d % 7 != weekday.rem_euclid(7) {
                continue;
            }
            let t = T0 + d * DAY + hour + rng.range(0, 3600);
            let ep = format!("{season}/E{d:03}.mkv");
            let kind = if *daily { DAILY } else { WEEKLY };
            out.push(event(t, vec![Op::Write(ep.clone(), 1 << 30)], ep, kind));
            let sub = format!("{season}/E{d:03}.srt");
            out.push(event(
                t + rng.range(120, 600),
                vec![Op::Write(sub.clone(), 40_000)],
                sub,
                EPISODE_SUBS,
            ));
        }
    }
    // New films: a new folder directly in the root with the video, its .nfo minutes later.
    for n in 0..NEW_FILMS_A_WEEK {
        let film = format!("{FILMS}/New Film {n:02} (2027)");
        let t = at(rng);
        out.push(event(
            t,
            vec![Op::Write(format!("{film}/film.mkv"), 4 << 30)],
            film.clone(),
            NEW_FILM,
        ));
        out.push(event(
            t + rng.range(120, 900),
            vec![Op::Write(format!("{film}/film.nfo"), 3000)],
            format!("{film}/film.nfo"),
            NEW_FILM_NFO,
        ));
    }
    for n in 0..NEW_SHOWS_A_WEEK {
        let show = format!("{TV}/New Show {n:02} (2027)");
        let ops = (1..=1 + rng.below(3))
            .map(|e| Op::Write(format!("{show}/Season 01/S01E{e:02}.mkv"), 1 << 30))
            .collect();
        out.push(event(at(rng), ops, show, NEW_SHOW));
    }
    // A returning show: a new season folder in an old show's folder.
    for _ in 0..NEW_SEASONS_A_WEEK {
        let (show, seasons) = quiet_shows[unused(rng, quiet_shows.len())];
        let s = seasons + 1;
        let season = format!("{show}/Season {s:02}");
        out.push(Event {
            pool: Some(1),
            ..event(
                at(rng),
                vec![Op::Write(format!("{season}/S{s:02}E01.mkv"), 1 << 30)],
                season,
                NEW_SEASON,
            )
        });
    }
    let mut films_used: HashSet<usize> = HashSet::new();
    let mut old_film = |rng: &mut Rng| loop {
        let i = rng.below(lib.films.len() as u64) as usize;
        if films_used.insert(i) {
            break lib.films[i].clone();
        }
    };
    for _ in 0..OLD_SUBS_A_WEEK {
        let sub = format!("{}/film.en.srt", old_film(rng));
        out.push(Event {
            pool: Some(0),
            ..event(at(rng), vec![Op::Write(sub.clone(), 60_000)], sub, OLD_SUBS)
        });
    }
    // Now and then: a film deleted, a film renamed (both shown by the root), an old
    // show's first season deleted (shown by the show's folder).
    let gone = old_film(rng);
    out.push(event(at(rng), vec![Op::Remove(gone.clone())], gone, DELETE));
    let (show, _) = quiet_shows[unused(rng, quiet_shows.len())];
    let season = format!("{show}/Season 01");
    out.push(Event {
        pool: Some(1),
        ..event(at(rng), vec![Op::Remove(season.clone())], season, DELETE)
    });
    let from = old_film(rng);
    let to = format!("{from} [1080p]");
    out.push(event(
        at(rng),
        vec![Op::Rename(from, to.clone())],
        to,
        RENAME,
    ));
    out.sort_by_key(|e| e.t);
    (out, vec![film_pool, show_pool])
}

/// The quiet library and its week.
pub fn library() -> Library {
    let mut rng = Rng(SEED);
    let (b, shape) = build(&mut rng);
    let (events, pools) = events(&shape, &mut rng);
    let roots = vec![FILMS.to_owned(), TV.to_owned()];
    let (source, order, history) = b.finish(&roots);
    let description = format!(
        "A small quiet library of {} folders under two watches on one source: `/lib/Films` with \
{} films directly in the root (old ones 1 to 10 years old, about three a week over the last \
eight weeks) and `/lib/TV` with {SHOWS} shows of 1 to 6 seasons, 2 of them airing daily and 6 \
weekly (their last five days or four weeks of episodes and subtitles already there). Changes in \
the week: {NEW_FILMS_A_WEEK} new films (a new folder in the root with the video, its .nfo 2 to 15 \
minutes later), {NEW_SHOWS_A_WEEK} new show, {NEW_SEASONS_A_WEEK} new season of an old show, the \
airing shows' episodes (subtitles 2 to 10 minutes later), subtitles added to {OLD_SUBS_A_WEEK} \
old films, a film and an old season deleted, a film renamed. Schedule: the `interval = \"10s\"` \
users write (base interval 10 s), ceiling 24 h (active ceiling 1 h); budget 0.9 calls a second \
(115's default), shared by the two watches: in each second every watch lists its due folders, \
then the spare budget goes to one watch, in turn.",
        order.len(),
        OLD_FILMS + 24,
    );
    Library {
        name: "quiet",
        title: "quiet: about 3,000 folders, a few new films a week".to_owned(),
        description,
        source,
        roots,
        schedule: Schedule::default()
            .with_base_interval(Duration::from_secs(10))
            .with_max_interval(Duration::from_secs(24 * 3600)),
        rate: Rate {
            calls: 9,
            per_secs: 10,
        },
        measured: MEASURED_DAYS * DAY,
        tail: TAIL_DAYS * DAY,
        history,
        events,
        pools,
        order,
    }
}
