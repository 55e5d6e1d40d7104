//! Every config mistake names the key and the line; secrets come from the environment;
//! the template `pps init` writes parses.

use pps::config::{Config, SourceConfig, TEMPLATE, TargetKind};
use pps_clouddrive::Auth;
use std::path::Path;
use std::time::Duration;

const GOOD: &str = r#"
[store]
path = "state/pps.db"

[sources.cd2]
kind = "clouddrive2"
url = "http://127.0.0.1:19798"
api_token = "tok-123"
max_queries_per_second = 0.9
concurrency = 2
push = true

[sources.nas]
kind = "local"

[targets.plex]
kind = "plex"
url = "http://127.0.0.1:32400"
token = "plex-secret"
path_mapping = [{ from = "/115", to = "/mnt/cd2/115" }]
scan_files = false

[targets.emby]
kind = "emby"
url = "http://127.0.0.1:8096"
api_key = "emby-secret"
path_mapping = [{ from = "/115", to = "/mnt/user/CloudDrive/115" }]

[[watch]]
source = "cd2"
path = "/115/电影"
interval = "10m"
exclude = ["@eaDir", ".*", "*.part"]
targets = ["plex", "emby"]

[targets.print]
kind = "stdout"

[[watch]]
source = "nas"
path = "/srv/media/"
targets = ["print"]
interval = "90s"
max_interval = "2h"
settle = "1d"
"#;

fn parse(text: &str) -> pps_core::Result<Config> {
    Config::parse(text, Some(Path::new("/etc/pps/pps.toml")), &[])
}

#[test]
fn the_documented_example_parses() {
    let c = parse(GOOD).unwrap();
    assert_eq!(
        c.store,
        Path::new("/etc/pps/state/pps.db"),
        "relative to the config file"
    );
    assert_eq!(c.watches.len(), 2);
    assert_eq!(c.watches[0].path, "/115/电影");
    assert_eq!(c.watches[0].interval, Duration::from_secs(600));
    assert_eq!(c.watches[1].path, "/srv/media");
    assert_eq!(c.watches[1].targets, ["print"]);
    assert_eq!(c.watches[1].settle, Duration::from_secs(86_400));
    assert_eq!(c.watches[1].max_interval, Duration::from_secs(7200));
    assert_eq!(c.watches[0].line, 29);
    match &c.sources["cd2"] {
        SourceConfig::CloudDrive2 { settings: s, .. } => {
            assert!(matches!(&s.auth, Auth::ApiToken(t) if t.expose() == "tok-123"));
            assert_eq!(s.max_queries_per_second, 0.9);
        }
        other => panic!("{other:?}"),
    }
    assert!(!c.targets["plex"].scan_files);
    assert!(c.targets["emby"].scan_files);
    assert_eq!(
        c.targets["plex"].mapping.map("/115/电影/a").as_deref(),
        Some("/mnt/cd2/115/电影/a")
    );
    // No secret in Debug.
    let dbg = format!("{c:?}");
    for secret in ["tok-123", "plex-secret", "emby-secret"] {
        assert!(!dbg.contains(secret), "{secret} leaked into Debug");
    }
}

#[test]
fn the_init_template_parses() {
    let c = Config::parse(TEMPLATE, None, &[]).unwrap();
    assert_eq!(c.watches.len(), 1);
    assert!(matches!(c.targets["print"].kind, TargetKind::Stdout));
    assert_eq!(c.watches[0].targets, ["print"], "every target by default");
}

#[test]
fn secrets_from_the_environment() {
    let text = GOOD
        .replace("token = \"plex-secret\"\n", "")
        .replace("api_token = \"tok-123\"\n", "");
    let env = vec![
        ("PPS_TARGETS_PLEX_TOKEN".to_owned(), "from-env".to_owned()),
        ("PPS_SOURCES_CD2_API_TOKEN".to_owned(), "12345".to_owned()),
        (
            "PPS_SOURCES_CD2_MAX_QUERIES_PER_SECOND".to_owned(),
            "0.5".to_owned(),
        ),
        ("PPS_TARGETS_NOPE_TOKEN".to_owned(), "ignored".to_owned()),
    ];
    let c = Config::parse(&text, None, &env).unwrap();
    match &c.targets["plex"].kind {
        TargetKind::Plex(p) => assert_eq!(p.token.expose(), "from-env"),
        other => panic!("{other:?}"),
    }
    match &c.sources["cd2"] {
        SourceConfig::CloudDrive2 { settings: s, .. } => {
            assert!(
                matches!(&s.auth, Auth::ApiToken(t) if t.expose() == "12345"),
                "a numeric token stays a string"
            );
            assert_eq!(s.max_queries_per_second, 0.5);
        }
        other => panic!("{other:?}"),
    }
    // Without the environment the missing token is an error that says how to set it.
    let err = Config::parse(&text, None, &[]).unwrap_err().to_string();
    assert!(
        err.contains("PPS_TARGETS_PLEX_TOKEN") && err.contains("targets.plex.token"),
        "{err}"
    );
}

/// Unraid passes every field of its template, blank ones as `NAME=''`: a blank
/// variable leaves the file's key alone, and adds nothing where the file has none.
#[test]
fn blank_environment_values_are_no_values() {
    let env = vec![
        ("PPS_TARGETS_PLEX_TOKEN".to_owned(), String::new()),
        ("PPS_SOURCES_CD2_API_TOKEN".to_owned(), String::new()),
        ("PPS_UI_PASSWORD_HASH".to_owned(), String::new()),
    ];
    let c = Config::parse(GOOD, None, &env).unwrap();
    match &c.targets["plex"].kind {
        TargetKind::Plex(p) => assert_eq!(p.token.expose(), "plex-secret"),
        other => panic!("{other:?}"),
    }
    assert!(c.ui.password_hash.is_none());
    // Without the key in the file, a blank variable is still "missing", named.
    let text = GOOD.replace("token = \"plex-secret\"\n", "");
    let err = Config::parse(&text, None, &env).unwrap_err().to_string();
    assert!(err.contains("targets.plex.token"), "{err}");
}

/// A container sets `PPS_SERVER_LISTEN` and a token for a `pps.toml` that has no
/// `[server]` table: the environment alone turns the server on.
#[test]
fn the_server_from_the_environment_alone() {
    assert!(!GOOD.contains("[server]"));
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let c = Config::parse(GOOD, None, &[]).unwrap();
    assert_eq!(c.server.listen, None, "no table and no variable: off");
    let c = Config::parse(
        GOOD,
        None,
        &env(&[
            ("PPS_SERVER_LISTEN", "0.0.0.0:8090"),
            ("PPS_SERVER_TOKEN", "from-env"),
        ]),
    )
    .unwrap();
    assert_eq!(c.server.listen, Some("0.0.0.0:8090".parse().unwrap()));
    assert_eq!(
        c.server.token.as_ref().map(|t| t.expose()),
        Some("from-env")
    );
    // Without a token it is refused as with a table, naming the variable to set.
    let err = Config::parse(GOOD, None, &env(&[("PPS_SERVER_LISTEN", "0.0.0.0:8090")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("server.token")
            && err.contains("PPS_SERVER_TOKEN")
            && err.contains("PPS_SERVER_LISTEN")
            && !err.contains("line"),
        "{err}"
    );
    // A blank token from the environment is no token (as a blank one in the file).
    let err = Config::parse(
        GOOD,
        None,
        &env(&[
            ("PPS_SERVER_LISTEN", "0.0.0.0:8090"),
            ("PPS_SERVER_TOKEN", "   "),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("server.token"), "{err}");
    assert!(!err.contains("   "), "{err}");
    // A bad address names the variable it came from.
    let err = Config::parse(
        GOOD,
        None,
        &env(&[("PPS_SERVER_LISTEN", "nowhere"), ("PPS_SERVER_TOKEN", "t")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("server.listen")
            && err.contains("environment variable PPS_SERVER_LISTEN")
            && err.contains("nowhere")
            && !err.contains("line"),
        "{err}"
    );
}

/// (what to change, expected key, expected line, a piece of the message)
fn cases() -> Vec<(String, &'static str, Option<usize>, &'static str)> {
    vec![
        (
            GOOD.replace("max_queries_per_second = 0.9", "max_qps = 0.9"),
            "sources.cd2.max_qps",
            Some(9),
            "max_qps",
        ),
        (
            GOOD.replace("concurrency = 2", "concurrency = \"two\""),
            "sources.cd2.concurrency",
            Some(10),
            "invalid type",
        ),
        (
            GOOD.replace("interval = \"10m\"", "interval = \"10 minutes\""),
            "watch[0].interval",
            Some(32),
            "not a unit",
        ),
        (
            GOOD.replace("interval = \"90s\"", "interval = \"90\""),
            "watch[1].interval",
            Some(43),
            "no unit",
        ),
        (
            // Under a second would list without pause and spin a core.
            GOOD.replace("interval = \"10m\"", "interval = \"500ms\""),
            "watch[0].interval",
            Some(32),
            "at least 1s",
        ),
        (
            GOOD.replace("source = \"cd2\"", "source = \"cd3\""),
            "watch[0].source",
            Some(30),
            "cd3",
        ),
        (
            GOOD.replace(
                "targets = [\"plex\", \"emby\"]",
                "targets = [\"plex\", \"embi\"]",
            ),
            "watch[0].targets",
            Some(34),
            "embi",
        ),
        (
            GOOD.replace(
                "url = \"http://127.0.0.1:32400\"",
                "url = \"127.0.0.1:32400\"",
            ),
            "targets.plex.url",
            Some(18),
            "not a URL",
        ),
        (
            GOOD.replace("url = \"http://127.0.0.1:32400\"", "url = \"ftp://x\""),
            "targets.plex.url",
            Some(18),
            "scheme",
        ),
        (
            GOOD.replace(
                "url = \"http://127.0.0.1:32400\"",
                "url = \"http://u:pw@host\"",
            ),
            "targets.plex.url",
            Some(18),
            "credentials",
        ),
        (
            GOOD.replace("kind = \"emby\"", "kind = \"kodi\""),
            "targets.emby.kind",
            Some(24),
            "kodi",
        ),
        (
            GOOD.replace("kind = \"local\"", "kind = \"smb\""),
            "sources.nas.kind",
            Some(14),
            "smb",
        ),
        (
            GOOD.replace("scan_files = false", "scan_files = true"),
            "targets.plex.scan_files",
            Some(21),
            "folders only",
        ),
        (
            GOOD.replace(
                "{ from = \"/115\", to = \"/mnt/cd2/115\" }",
                "{ from = \"/116\", to = \"/mnt/cd2/116\" }",
            ),
            "targets.plex.path_mapping",
            Some(20),
            "maps nothing",
        ),
        (
            GOOD.replace(
                "{ from = \"/115\", to = \"/mnt/cd2/115\" }",
                "{ from = \"115\", to = \"/x\" }",
            ),
            "targets.plex.path_mapping",
            Some(20),
            "absolute",
        ),
        (
            GOOD.replace("path = \"/115/电影\"", "path = \"115/电影\""),
            "watch[0].path",
            Some(31),
            "absolute",
        ),
        (
            GOOD.replace(
                "exclude = [\"@eaDir\", \".*\", \"*.part\"]",
                "exclude = [\"a/b\"]",
            ),
            "watch[0].exclude",
            Some(33),
            "a/b",
        ),
        (format!("{GOOD}\n[srv]\nlisten = 1\n"), "", Some(47), "srv"),
        (
            format!("{GOOD}\n[server]\nlisten = \"127.0.0.1:8090\"\n"),
            "server.token",
            Some(47),
            "PPS_SERVER_TOKEN",
        ),
        (
            format!("{GOOD}\n[server]\nlisten = \"localhost\"\ntoken = \"t\"\n"),
            "server.listen",
            Some(48),
            "not an address",
        ),
        (
            GOOD.replace("token = \"plex-secret\"", "token = 4242424242"),
            "targets.plex.token",
            Some(19),
            "its value is not shown",
        ),
        (
            GOOD.replace("api_key = \"emby-secret\"", "api_key = 777777777"),
            "targets.emby.api_key",
            Some(26),
            "must be a string in quotes",
        ),
        (
            format!("{GOOD}\n[server]\nlisten = \"127.0.0.1:8090\"\ntoken = \" tok-123 \"\n"),
            "server.token",
            None,
            "spaces or line breaks",
        ),
        (
            format!("{GOOD}\n[server]\nlistn = \"x\"\n"),
            "server.listn",
            Some(48),
            "listn",
        ),
        (
            GOOD.replace("exclude = [\"@eaDir\", \".*\", \"*.part\"]", "exclude = 5"),
            "watch[0].exclude",
            Some(33),
            "invalid type",
        ),
        (
            GOOD.replace("url = \"http://127.0.0.1:32400\"", "url = \"http://[::1\""),
            "targets.plex.url",
            Some(18),
            "not a valid URL",
        ),
        (GOOD.replace("[store]", "[store\n"), "", Some(2), ""),
        (
            GOOD.replace("api_key = \"emby-secret\"", ""),
            "targets.emby.api_key",
            Some(23),
            "required",
        ),
        (
            GOOD.replace("token = \"plex-secret\"", "api_key = \"x\""),
            "targets.plex.api_key",
            Some(19),
            "does not apply",
        ),
        (
            GOOD.replace("max_queries_per_second = 0.9", "max_queries_per_second = 0"),
            "sources.cd2.max_queries_per_second",
            Some(9),
            "above 0",
        ),
        (
            GOOD.replace("api_token = \"tok-123\"", "username = \"me\""),
            "sources.cd2.password",
            Some(5),
            "password",
        ),
        (
            GOOD.replace("max_interval = \"2h\"", "max_interval = \"1m\""),
            "watch[1].max_interval",
            Some(44),
            "at least",
        ),
    ]
}

#[test]
fn every_mistake_names_its_key_and_line() {
    for (text, key, line, piece) in cases() {
        let err = parse(&text).expect_err(piece);
        let shown = err.to_string();
        assert_eq!(err.kind(), pps_core::ErrorKind::ConfigInvalid, "{shown}");
        assert_eq!(
            err.context_value("file"),
            Some("/etc/pps/pps.toml"),
            "{shown}"
        );
        if !key.is_empty() {
            assert_eq!(err.context_value("key"), Some(key), "{shown}");
        }
        if let Some(l) = line {
            assert_eq!(
                err.context_value("line"),
                Some(l.to_string().as_str()),
                "{shown}"
            );
        }
        assert!(shown.contains(piece), "`{piece}` not in: {shown}");
        for secret in ["tok-123", "plex-secret", "emby-secret", "pw@"] {
            assert!(!shown.contains(secret), "secret {secret} in: {shown}");
        }
    }
}

#[test]
fn the_schedule_keys_of_the_first_hour() {
    let text = GOOD
        .replace(
            "max_queries_per_second = 0.9",
            "max_queries_per_second = 0.9\nmax_calls_per_day = 40000",
        )
        .replace(
            "interval = \"10m\"",
            "interval = \"10m\"\nactive_max_interval = \"30m\"",
        );
    let c = parse(&text).unwrap();
    let SourceConfig::CloudDrive2 {
        max_calls_per_day, ..
    } = &c.sources["cd2"]
    else {
        panic!("cd2")
    };
    assert_eq!(*max_calls_per_day, Some(40_000));
    assert_eq!(c.watches[0].active_max_interval, Duration::from_secs(1800));
    let d = parse(GOOD).unwrap();
    assert_eq!(
        d.watches[0].active_max_interval,
        Duration::from_secs(3600),
        "default"
    );
    let bad = GOOD.replace(
        "interval = \"10m\"",
        "interval = \"10m\"\nactive_max_interval = \"5m\"",
    );
    let err = parse(&bad).unwrap_err();
    assert_eq!(
        err.context_value("key"),
        Some("watch[0].active_max_interval"),
        "{err}"
    );
}

#[test]
fn every_adapter_option_can_be_set_and_the_defaults_are_the_adapters() {
    let text = GOOD
        .replace(
            "push = true",
            "push = true\nmax_backoff = \"30s\"\nthrottle_cooldown = \"10m\"",
        )
        .replace(
            "scan_files = false",
            "scan_files = false\nsections_ttl = \"1m\"",
        )
        .replace(
            "api_key = \"emby-secret\"",
            "api_key = \"emby-secret\"\nmax_batch = 7\nlibraries_ttl = \"2m\"",
        );
    let c = parse(&text).unwrap();
    let SourceConfig::CloudDrive2 { settings, .. } = &c.sources["cd2"] else {
        panic!("cd2")
    };
    assert_eq!(settings.max_backoff, Duration::from_secs(30));
    assert_eq!(settings.throttle_cooldown, Duration::from_secs(600));
    let TargetKind::Plex(plex) = &c.targets["plex"].kind else {
        panic!("plex")
    };
    assert_eq!(plex.sections_ttl, Duration::from_secs(60));
    let TargetKind::Emby(emby) = &c.targets["emby"].kind else {
        panic!("emby")
    };
    assert_eq!(
        (emby.max_batch, emby.libraries_ttl),
        (7, Duration::from_secs(120))
    );
    // Left out, each is the adapter's own default: one place for them.
    let d = parse(GOOD).unwrap();
    let SourceConfig::CloudDrive2 {
        settings,
        concurrency,
        ..
    } = &d.sources["cd2"]
    else {
        panic!("cd2")
    };
    let defaults = pps_clouddrive::CloudDriveConfig::default();
    assert_eq!(settings.burst, defaults.burst);
    assert_eq!(settings.retries, defaults.retries);
    assert_eq!(settings.throttle_backoff, defaults.throttle_backoff);
    assert_eq!(*concurrency, pps::config::CLOUDDRIVE_CONCURRENCY);
    let TargetKind::Plex(plex) = &d.targets["plex"].kind else {
        panic!("plex")
    };
    assert_eq!(plex.pacing, pps_mediaserver::PlexConfig::default().pacing);
    // An unknown key of an adapter is named with its line.
    let bad = GOOD.replace("push = true", "push = true\nretrys = 3");
    let err = parse(&bad).unwrap_err();
    assert_eq!(
        err.context_value("key"),
        Some("sources.cd2.retrys"),
        "{err}"
    );
    assert_eq!(err.context_value("line"), Some("12"), "{err}");
}

#[test]
fn a_url_with_a_token_and_a_bad_port_never_echoes_the_token() {
    for (from, to) in [
        (
            "url = \"http://127.0.0.1:32400\"",
            "url = \"http://plex.lan:99999/?X-Plex-Token=abc-SECRET\"",
        ),
        (
            "url = \"http://127.0.0.1:19798\"",
            "url = \"http://cd2.lan:99999/?token=abc-SECRET\"",
        ),
        (
            "url = \"http://127.0.0.1:32400\"",
            "url = \"http://plex.lan:99x\"",
        ),
    ] {
        let err = parse(&GOOD.replace(from, to)).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("abc-SECRET"), "{shown}");
        assert!(
            err.context_value("key")
                .is_some_and(|k| k.ends_with(".url")),
            "{shown}"
        );
    }
}

/// Issue 24: the shared budget's ceilings and throttle pause, with every bad value
/// named by its key and line, and the budget keys refused on a local folder.
#[test]
fn the_budget_keys_and_their_errors() {
    let text = GOOD.replace(
        "max_queries_per_second = 0.9",
        "max_queries_per_second = 0.9\nmax_calls_per_minute = 200\nmax_calls_per_hour = 12000\nthrottle_pause = \"5m\"",
    );
    let c = parse(&text).unwrap();
    let SourceConfig::CloudDrive2 {
        max_calls_per_minute,
        max_calls_per_hour,
        throttle_pause,
        ..
    } = &c.sources["cd2"]
    else {
        panic!("cd2")
    };
    assert_eq!(
        (*max_calls_per_minute, *max_calls_per_hour, *throttle_pause),
        (Some(200), Some(12_000), Duration::from_secs(300))
    );
    let d = parse(GOOD).unwrap();
    let SourceConfig::CloudDrive2 { throttle_pause, .. } = &d.sources["cd2"] else {
        panic!("cd2")
    };
    assert_eq!(
        *throttle_pause,
        Duration::from_secs(60),
        "a minute by default"
    );
    let off = parse(&GOOD.replace(
        "max_queries_per_second = 0.9",
        "max_queries_per_second = 0.9\nthrottle_pause = \"0s\"",
    ))
    .unwrap();
    let SourceConfig::CloudDrive2 { throttle_pause, .. } = &off.sources["cd2"] else {
        panic!("cd2")
    };
    assert_eq!(*throttle_pause, Duration::ZERO, "0s turns it off");
    let line_of =
        |text: &str, key: &str| text.lines().position(|l| l.starts_with(key)).unwrap() + 1;
    for (extra, key, says) in [
        (
            "throttle_pause = \"5s\"",
            "throttle_pause",
            "under a minute",
        ),
        (
            "throttle_pause = \"soon\"",
            "throttle_pause",
            "not a duration",
        ),
        (
            "max_calls_per_minute = 0",
            "max_calls_per_minute",
            "at least 1",
        ),
        ("max_calls_per_hour = 0", "max_calls_per_hour", "at least 1"),
        ("max_calls_per_day = 0", "max_calls_per_day", "at least 1"),
    ] {
        let bad = GOOD.replace(
            "max_queries_per_second = 0.9",
            &format!("max_queries_per_second = 0.9\n{extra}"),
        );
        let err = parse(&bad).unwrap_err();
        let shown = err.to_string();
        assert_eq!(
            err.context_value("key"),
            Some(format!("sources.cd2.{key}").as_str()),
            "{shown}"
        );
        assert_eq!(
            err.context_value("line"),
            Some(line_of(&bad, key).to_string().as_str()),
            "{shown}"
        );
        assert!(shown.contains(says), "`{says}` not in: {shown}");
    }
    let local = "[sources.nas]\nkind = \"local\"\nmax_calls_per_hour = 100\n\n[targets.print]\nkind = \"stdout\"\n";
    let err = parse(local).unwrap_err();
    assert_eq!(
        err.context_value("key"),
        Some("sources.nas.max_calls_per_hour"),
        "{err}"
    );
    assert!(err.to_string().contains("cloud sources only"), "{err}");
}
