//! The busy library of issues 6 and 15, unchanged so its figures stay comparable: TV in
//! four regions with 2,000 shows and their seasons, movies in ten genres, about 22,000
//! folders, one watch on `/lib`, base interval 5 minutes, one listing a second.

use super::library::{Builder, Class, DAY, Event, Kind, Library, Op, Pool, Rate, T0};
use super::rng::Rng;
use pps_core::Schedule;
use std::time::Duration;

const MEASURED_DAYS: i64 = 7;
const TAIL_DAYS: i64 = 2;
const TARGET_FOLDERS: usize = 20_000;
/// The seed of issues 6 and 15: the same library and the same week of changes.
const SEED: u64 = 0x5EED_0006;

const DAILY: Kind = Kind::new("daily episode", Class::Show);
const WEEKLY: Kind = Kind::new("weekly episode", Class::Show);
const SUBTITLES: Kind = Kind::new("subtitles", Class::Show);
const NEW_SHOW: Kind = Kind::new("new show", Class::NewTitle);
const NEW_MOVIE: Kind = Kind::new("new movie", Class::NewTitle);
const NEW_MOVIE_NFO: Kind = Kind::new("new movie's .nfo", Class::Other);
const EDIT: Kind = Kind::new("edit", Class::Other);
const DELETE: Kind = Kind::new("delete", Class::Other);
const RENAME: Kind = Kind::new("rename", Class::Other);

struct Shape {
    shows: Vec<(String, u32)>,
    movies: Vec<String>,
    genres: Vec<String>,
    regions: Vec<String>,
    /// The airing shows: (season folder, daily, hour of day, weekday).
    airing: Vec<(String, bool, i64, i64)>,
}

fn build(rng: &mut Rng) -> (Builder, Shape) {
    let regions: Vec<String> = ["US", "CN", "JP", "KR"]
        .iter()
        .map(|r| format!("/lib/TV/{r}"))
        .collect();
    let genres: Vec<String> = [
        "Action",
        "Animation",
        "Comedy",
        "Crime",
        "Documentary",
        "Drama",
        "Family",
        "Horror",
        "Romance",
        "Sci-Fi",
    ]
    .iter()
    .map(|g| format!("/lib/Movies/{g}"))
    .collect();
    let mut b = Builder::default();
    let old = |rng: &mut Rng| T0 - rng.range(365 * DAY, 10 * 365 * DAY);
    let mut shows = Vec::new();
    for i in 0..2000 {
        let r = i % regions.len();
        let show = format!("{}/Show {i:04} ({})", regions[r], 1990 + rng.below(35));
        let seasons = 1 + rng.below(5) as u32;
        let t = old(rng);
        for s in 1..=seasons {
            for e in 1..=8 + rng.below(5) {
                b.file(
                    &format!("{show}/Season {s:02}/S{s:02}E{e:02}.mkv"),
                    1 << 30,
                    t,
                );
            }
        }
        shows.push((show, seasons));
    }
    // Airing shows: 30 daily (an episode at about the same hour every day), 10 weekly,
    // with the last five days' (or four weeks') episodes and subtitles already there.
    let mut airing = Vec::new();
    for k in 0..40usize {
        let (show, seasons) = &shows[(k * 37) % shows.len()];
        let season = format!("{show}/Season {seasons:02}");
        let hour = rng.range(0, 24) * 3600;
        let daily = k < 30;
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
    // The last two weeks' new shows and movies.
    let mut n = 0;
    for d in 1..=14 {
        for _ in 0..3 {
            n += 1;
            let region = &regions[rng.below(regions.len() as u64) as usize];
            let t = T0 - d * DAY + rng.range(0, DAY);
            b.file(
                &format!("{region}/Recent Show {n:04}/Season 01/S01E01.mkv"),
                1 << 30,
                t,
            );
        }
        for _ in 0..15 {
            n += 1;
            let genre = &genres[rng.below(genres.len() as u64) as usize];
            let t = T0 - d * DAY + rng.range(0, DAY);
            b.file(
                &format!("{genre}/Recent Movie {n:04}/movie.mkv"),
                4 << 30,
                t,
            );
            b.file(
                &format!("{genre}/Recent Movie {n:04}/movie.nfo"),
                3000,
                t + 300,
            );
        }
    }
    let mut movies = Vec::new();
    let mut i = 0;
    while b.len() + 20 < TARGET_FOLDERS {
        let g = i % genres.len();
        let movie = format!("{}/Movie {i:05} ({})", genres[g], 1950 + rng.below(75));
        let t = old(rng);
        b.file(&format!("{movie}/movie.mkv"), 4 << 30, t);
        b.file(&format!("{movie}/movie.nfo"), 2000, t);
        movies.push(movie);
        i += 1;
    }
    for g in &genres {
        b.folder(g);
    }
    let shape = Shape {
        shows,
        movies,
        genres,
        regions,
        airing,
    };
    (b, shape)
}

/// The pools edits are drawn from: an old movie (each equally likely) and a season of
/// an old show (a show equally likely, then one of its seasons).
fn pools(lib: &Shape) -> Vec<Pool> {
    let movies = Pool::uniform(lib.movies.iter().cloned());
    let mut seasons = Pool::default();
    let per_show = 1.0 / lib.shows.len() as f64;
    for (show, n) in &lib.shows {
        for s in 1..=*n {
            seasons
                .folders
                .push((format!("{show}/Season {s:02}"), per_show / f64::from(*n)));
        }
    }
    vec![movies, seasons]
}

fn events(lib: &Shape, rng: &mut Rng) -> Vec<Event> {
    let days = MEASURED_DAYS;
    let event = |t, ops, path, kind| Event {
        t,
        ops,
        path,
        kind,
        pool: None,
    };
    let mut out = Vec::new();
    for (season, daily, hour, weekday) in &lib.airing {
        for d in 0..days {
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
                SUBTITLES,
            ));
        }
    }
    let mut n = 1000;
    for d in 0..days {
        // New shows: 3 a day, with a first season of 1 to 3 episodes.
        for _ in 0..3 {
            n += 1;
            let region = &lib.regions[rng.below(lib.regions.len() as u64) as usize];
            let show = format!("{region}/New Show {n:04}");
            let ops = (1..=1 + rng.below(3))
                .map(|e| Op::Write(format!("{show}/Season 01/S01E{e:02}.mkv"), 1 << 30))
                .collect();
            out.push(event(T0 + d * DAY + rng.range(0, DAY), ops, show, NEW_SHOW));
        }
        // New movies: 15 a day; the video first, its metadata minutes later.
        for _ in 0..15 {
            n += 1;
            let genre = &lib.genres[rng.below(lib.genres.len() as u64) as usize];
            let movie = format!("{genre}/New Movie {n:04}");
            let t = T0 + d * DAY + rng.range(0, DAY);
            out.push(event(
                t,
                vec![Op::Write(format!("{movie}/movie.mkv"), 4 << 30)],
                movie.clone(),
                NEW_MOVIE,
            ));
            out.push(event(
                t + rng.range(60, 900),
                vec![Op::Write(format!("{movie}/movie.nfo"), 3000)],
                format!("{movie}/movie.nfo"),
                NEW_MOVIE_NFO,
            ));
        }
        // Edits of old titles: 10 a day (a better copy replaces a file).
        for _ in 0..10 {
            let t = T0 + d * DAY + rng.range(0, DAY);
            let (path, pool) = if rng.below(2) == 0 {
                let m = &lib.movies[rng.below(lib.movies.len() as u64) as usize];
                (format!("{m}/movie.mkv"), 0)
            } else {
                let (show, seasons) = &lib.shows[rng.below(lib.shows.len() as u64) as usize];
                let s = 1 + rng.below(u64::from(*seasons));
                (format!("{show}/Season {s:02}/S01E01.mkv"), 1)
            };
            out.push(Event {
                pool: Some(pool),
                ..event(
                    t,
                    vec![Op::Write(path.clone(), (5 << 30) + rng.below(1 << 20))],
                    path,
                    EDIT,
                )
            });
        }
        // Deletions and renames of old movies: 2 of each a day.
        for j in 0..4 {
            let m = lib.movies[rng.below(lib.movies.len() as u64) as usize].clone();
            let t = T0 + d * DAY + rng.range(0, DAY);
            if j % 2 == 0 {
                out.push(event(t, vec![Op::Remove(m.clone())], m, DELETE));
            } else {
                let to = format!("{m} [Remastered]");
                out.push(event(t, vec![Op::Rename(m, to.clone())], to, RENAME));
            }
        }
    }
    out.sort_by_key(|e| e.t);
    out
}

/// The busy library and its week.
pub fn library() -> Library {
    let mut rng = Rng(SEED);
    let (b, shape) = build(&mut rng);
    let events = events(&shape, &mut rng);
    let roots = vec!["/lib".to_owned()];
    let (source, order, history) = b.finish(&roots);
    let description = format!(
        "A synthetic library (TV in four regions with 2,000 shows of 1 to 5 seasons, movies in ten \
genres; {} folders) under one watch on `/lib`, with a real library's history in its mtimes: the \
airing shows' last five days (daily) or four weeks (weekly) of episodes and subtitles, two weeks of \
new shows (3 a day) and movies (15 a day), and old titles 1 to 10 years old. Changes: 30 daily and \
10 weekly airing shows (an episode at about the same hour, its subtitles 2 to 10 minutes later), 3 \
new shows (in a region folder) and 15 new movies (in a genre folder) a day (the video, then its \
.nfo minutes later), 10 edits of old titles, 2 deletions and 2 renames of old movies a day. \
Schedule: base interval 5 min, ceiling 24 h (active ceiling 1 h); budget one listing a second. \
The generator and its seed are those of issues 6 and 15; only the .nfo of a new movie is now a \
kind of its own.",
        order.len()
    );
    Library {
        name: "busy",
        title: "busy: about 22,000 folders, a busy week".to_owned(),
        description,
        source,
        roots,
        schedule: Schedule::default()
            .with_base_interval(Duration::from_secs(5 * 60))
            .with_max_interval(Duration::from_secs(24 * 3600)),
        rate: Rate {
            calls: 1,
            per_secs: 1,
        },
        measured: MEASURED_DAYS * DAY,
        tail: TAIL_DAYS * DAY,
        history,
        events,
        pools: pools(&shape),
        order,
    }
}
