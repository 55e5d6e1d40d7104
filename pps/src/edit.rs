//! Edits of `pps.toml` that keep its comments and layout: the web UI's watch list.
//!
//! An edit is made on the file's text with a format-preserving TOML editor
//! (`toml_edit`), then the whole new text is validated by [`Config::parse`], the same
//! validation `pps check` and `pps run` apply. An edit that does not validate is refused
//! with that message and the file is not touched (byte-identical); one that validates
//! replaces the file atomically (a sibling temporary file renamed over it, with the
//! old file's permissions), so a crash leaves the old file or the new one, never half.
//!
//! Every edit of an existing watch names the watch by its place in the file and by the
//! path it expects there: when the file was edited by hand meanwhile and the watch at
//! that place is another one, the edit is refused instead of changing the wrong watch.

use crate::config::Config;
use pps_core::{Error, ErrorKind, Result};
use std::path::{Path, PathBuf};
use toml_edit::{Array, DocumentMut, Item, Table, value};

/// A watch as a form gives it. Empty optional fields leave their key out of the file
/// (the default applies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchForm {
    /// The source's name.
    pub source: String,
    /// The watched root.
    pub path: String,
    /// `interval` (`10m`), or empty for the default.
    pub interval: String,
    /// `max_interval`, or empty.
    pub max_interval: String,
    /// `settle`, or empty.
    pub settle: String,
    /// `exclude` patterns; none leaves the key out.
    pub exclude: Vec<String>,
    /// `targets`; none leaves the key out (every target).
    pub targets: Vec<String>,
    /// `enabled`; `true` leaves the key out.
    pub enabled: bool,
}

/// One change to the file's `[[watch]]` list.
#[derive(Debug, Clone)]
pub enum WatchEdit {
    /// A new `[[watch]]` at the end.
    Add(WatchForm),
    /// The watch at `index` (file order) whose path is `expect`, replaced by `form`
    /// (keys the form does not set are left as they are, except the optional ones it
    /// clears).
    Update {
        /// Its place in the file.
        index: usize,
        /// The path it must have there.
        expect: String,
        /// The new values.
        form: WatchForm,
    },
    /// The watch at `index` whose path is `expect`, removed.
    Remove {
        /// Its place in the file.
        index: usize,
        /// The path it must have there.
        expect: String,
    },
    /// The watch at `index` whose path is `expect`, enabled or disabled.
    Enable {
        /// Its place in the file.
        index: usize,
        /// The path it must have there.
        expect: String,
        /// On or off.
        enabled: bool,
    },
}

/// What an edit did.
#[derive(Debug)]
pub struct Edited {
    /// The config the file now holds.
    pub config: Config,
    /// False when the edit left the text as it was (a form saved unchanged): the file
    /// was not written, and there is nothing to apply.
    pub changed: bool,
}

/// Applies `edit` to the config file `file` with the process's environment, validates
/// the result as `pps check` does, and writes it.
///
/// # Errors
/// `ConfigInvalid` with the validation's message (key and line) when the edited file
/// would not validate, or when the watch named is not at its place; the file is then
/// left byte-identical. `PermissionDenied`, with the `file` in its context, when pps
/// may not write the file or its folder (the systemd unit, a read-only mount). An I/O
/// error reading or writing the file.
pub fn edit_watches(file: &Path, edit: &WatchEdit) -> Result<Edited> {
    let env = crate::config::process_env()?;
    edit_watches_with(file, edit, &env)
}

static EDITS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// [`edit_watches`] with given environment pairs (tests).
pub fn edit_watches_with(
    file: &Path,
    edit: &WatchEdit,
    env: &[(String, String)],
) -> Result<Edited> {
    // One edit at a time in this process: two saves at once (a double click, two tabs)
    // would otherwise both read the old file and the second rename would drop the
    // first edit while both were answered "saved".
    let _one = EDITS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let text = std::fs::read_to_string(file).map_err(|e| io_err("cannot read", file, &e))?;
    let new = apply(&text, edit).map_err(|e| e.with("file", file.display().to_string()))?;
    let config = Config::parse(&new, Some(file), env)?;
    let changed = new != text;
    if changed {
        write_atomically(file, &new)?;
    }
    Ok(Edited { config, changed })
}

/// The edited text (not validated).
///
/// # Errors
/// `ConfigInvalid` when the text is not TOML, `watch` is not a list of tables, or the
/// watch named is not where the edit expects it.
pub fn apply(text: &str, edit: &WatchEdit) -> Result<String> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        Error::new(
            ErrorKind::ConfigInvalid,
            format!("the file is not valid TOML: {}", e.message()),
        )
    })?;
    if matches!(edit, WatchEdit::Add(_)) && doc.get("watch").is_none() {
        doc.insert("watch", Item::ArrayOfTables(Default::default()));
    }
    let mut doc_trailing = None;
    if matches!(edit, WatchEdit::Add(_)) {
        let trailing = doc.trailing().as_str().unwrap_or("").to_owned();
        doc.set_trailing("");
        doc_trailing = Some(trailing);
    }
    let watches = doc
        .get_mut("watch")
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                "`watch` is not a list of [[watch]] tables",
            )
            .with("key", "watch")
        })?;
    let at = |watches: &mut toml_edit::ArrayOfTables, index: usize, expect: &str| {
        let found = watches
            .get(index)
            .and_then(|t| t.get("path"))
            .and_then(Item::as_str)
            .and_then(|p| pps_core::path::normalize(p).ok());
        let expect = pps_core::path::normalize(expect).ok();
        if found.is_none() || found != expect {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                "the file changed since the page was shown: that watch is no longer there; reload the page",
            )
            .with("key", format!("watch[{index}]")));
        }
        Ok(())
    };
    match edit {
        WatchEdit::Add(form) => {
            let mut t = Table::new();
            fill(&mut t, form);
            // What follows the last table (commented-out keys of the last watch) stays
            // where it is: before the new [[watch]], not after it.
            let trailing = doc_trailing.take().unwrap_or_default();
            let gap = if trailing.is_empty() || trailing.ends_with("\n\n") {
                ""
            } else {
                "\n"
            };
            t.decor_mut().set_prefix(format!("{trailing}{gap}"));
            watches.push(t);
        }
        WatchEdit::Update {
            index,
            expect,
            form,
        } => {
            at(watches, *index, expect)?;
            if let Some(t) = watches.get_mut(*index) {
                fill(t, form);
            }
        }
        WatchEdit::Remove { index, expect } => {
            at(watches, *index, expect)?;
            watches.remove(*index);
        }
        WatchEdit::Enable {
            index,
            expect,
            enabled,
        } => {
            at(watches, *index, expect)?;
            if let Some(t) = watches.get_mut(*index) {
                set_enabled(t, *enabled);
            }
        }
    }
    Ok(doc.to_string())
}

/// The `[[watch]]` tables of `text` as written (durations as the user wrote them), in
/// file order: what an edit form starts from. Not validated; a file that is not TOML
/// has none.
pub fn read_watches(text: &str) -> Vec<WatchForm> {
    let Ok(doc) = text.parse::<DocumentMut>() else {
        return Vec::new();
    };
    let Some(list) = doc.get("watch").and_then(Item::as_array_of_tables) else {
        return Vec::new();
    };
    let s = |t: &Table, k: &str| t.get(k).and_then(Item::as_str).unwrap_or("").to_owned();
    let v = |t: &Table, k: &str| -> Vec<String> {
        t.get(k)
            .and_then(Item::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    list.iter()
        .map(|t| WatchForm {
            source: s(t, "source"),
            path: s(t, "path"),
            interval: s(t, "interval"),
            max_interval: s(t, "max_interval"),
            settle: s(t, "settle"),
            exclude: v(t, "exclude"),
            targets: v(t, "targets"),
            enabled: t.get("enabled").and_then(Item::as_bool).unwrap_or(true),
        })
        .collect()
}

fn fill(t: &mut Table, form: &WatchForm) {
    set(t, "source", form.source.trim().into());
    set(t, "path", form.path.trim().into());
    for (key, v) in [
        ("interval", &form.interval),
        ("max_interval", &form.max_interval),
        ("settle", &form.settle),
    ] {
        match v.trim() {
            "" => {
                t.remove(key);
            }
            v => set(t, key, v.into()),
        }
    }
    for (key, list) in [("exclude", &form.exclude), ("targets", &form.targets)] {
        let list: Vec<&str> = list
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if list.is_empty() {
            t.remove(key);
        } else {
            set(t, key, list.into_iter().collect::<Array>().into());
        }
    }
    set_enabled(t, form.enabled);
}

/// Sets `key` to `new`, leaving a value that is already equal as written (its quotes,
/// its comment) and keeping the comment of one that changes.
fn set(t: &mut Table, key: &str, new: toml_edit::Value) {
    let bare = |v: &toml_edit::Value| {
        let mut v = v.clone();
        v.decor_mut().clear();
        match &v {
            toml_edit::Value::String(s) => s.value().clone(),
            _ => v.to_string(),
        }
    };
    match t.get_mut(key).and_then(Item::as_value_mut) {
        Some(old) if bare(old) == bare(&new) => {}
        Some(old) => {
            let decor = old.decor().clone();
            *old = new;
            *old.decor_mut() = decor;
        }
        None => t[key] = value(new),
    }
}

fn set_enabled(t: &mut Table, enabled: bool) {
    if enabled {
        t.remove("enabled");
    } else {
        set(t, "enabled", false.into());
    }
}

/// Replaces `file` by `text` through a sibling temporary file, keeping the old file's
/// permissions (a config with tokens stays 0600). A symlinked config is written where
/// the link points, so the link stays.
fn write_atomically(file: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let real: PathBuf = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
    let dir = real.parent().unwrap_or(Path::new("."));
    let name = real
        .file_name()
        .map_or_else(|| "pps.toml".into(), |n| n.to_string_lossy().into_owned());
    // A name of its own per write (another program editing beside us must not share it).
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.pps-edit-{}-{n}", std::process::id()));
    let perms = std::fs::metadata(&real).map(|m| m.permissions()).ok();
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        if let Some(p) = &perms {
            f.set_permissions(p.clone())?;
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &real)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_error(&real, &e)
    })
}

/// The error of a failed write of the config file `real`.
pub(crate) fn write_error(real: &Path, e: &std::io::Error) -> Error {
    {
        if matches!(
            e.kind(),
            std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
        ) {
            // The systemd unit (ProtectSystem=strict) and a container's `:ro` mount keep
            // the config read-only for pps on purpose: say so, and what to do instead.
            // PermissionDenied (not a config error): the web UI tells this one apart
            // and says it in the page's language.
            return Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "the config file is read-only for pps here ({e}), so the UI cannot save this edit: \
                     edit {} by hand and reload (`systemctl reload pps`, or SIGHUP), or give pps write \
                     access to its folder (a writable mount in a container)",
                    real.display()
                ),
            )
            .permanent()
            .with("file", real.display().to_string());
        }
        io_err("cannot write", real, e)
    }
}

fn io_err(what: &str, file: &Path, e: &std::io::Error) -> Error {
    Error::new(
        ErrorKind::ConfigInvalid,
        format!("{what} the config file: {e}"),
    )
    .permanent()
    .with("file", file.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# my sources
[sources.local]
kind = "local"

[targets.out]
kind = "stdout"

# TV first
[[watch]]
source = "local"   # the disk
path = "/tv"
interval = "10m"

[[watch]]
source = "local"
path = "/films"
"#;

    #[test]
    fn an_edit_keeps_comments_and_layout() {
        let form = WatchForm {
            source: "local".into(),
            path: "/tv".into(),
            interval: "5m".into(),
            enabled: true,
            ..WatchForm::default()
        };
        let out = apply(
            FILE,
            &WatchEdit::Update {
                index: 0,
                expect: "/tv".into(),
                form,
            },
        )
        .unwrap();
        assert!(out.contains("# my sources\n"), "{out}");
        assert!(out.contains("# TV first\n[[watch]]\n"), "{out}");
        assert!(out.contains("source = \"local\"   # the disk"), "{out}");
        assert!(out.contains("interval = \"5m\""), "{out}");
        let moved = apply(
            FILE,
            &WatchEdit::Update {
                index: 0,
                expect: "/tv".into(),
                form: WatchForm {
                    source: "nas".into(),
                    path: "/tv".into(),
                    enabled: true,
                    ..WatchForm::default()
                },
            },
        )
        .unwrap();
        assert!(moved.contains("source = \"nas\"   # the disk"), "{moved}");
        assert!(
            !moved.contains("10m"),
            "a cleared field goes back to its default: {moved}"
        );
        assert!(out.ends_with("path = \"/films\"\n"), "{out}");
    }

    #[test]
    fn disable_remove_and_add() {
        let off = apply(
            FILE,
            &WatchEdit::Enable {
                index: 1,
                expect: "/films/".into(),
                enabled: false,
            },
        )
        .unwrap();
        assert!(off.contains("path = \"/films\"\nenabled = false"), "{off}");
        let gone = apply(
            &off,
            &WatchEdit::Remove {
                index: 0,
                expect: "/tv".into(),
            },
        )
        .unwrap();
        assert!(!gone.contains("/tv"), "{gone}");
        assert!(gone.contains("# my sources"), "{gone}");
        let added = apply(
            "[sources.local]\nkind = \"local\"\n",
            &WatchEdit::Add(WatchForm {
                source: "local".into(),
                path: "/new".into(),
                exclude: vec!["*.part".into(), " ".into()],
                enabled: true,
                ..WatchForm::default()
            }),
        )
        .unwrap();
        assert!(
            added.ends_with(
                "[[watch]]\nsource = \"local\"\npath = \"/new\"\nexclude = [\"*.part\"]\n"
            ),
            "{added}"
        );
    }

    #[test]
    fn a_read_only_config_says_why_and_what_to_do() {
        // Under the systemd unit (ProtectSystem=strict) or a `:ro` mount. (Tests run as
        // root here, which no permission stops, so the error is made, not provoked.)
        for kind in [
            std::io::ErrorKind::ReadOnlyFilesystem,
            std::io::ErrorKind::PermissionDenied,
        ] {
            let e = write_error(Path::new("/etc/pps/pps.toml"), &std::io::Error::from(kind));
            let m = e.to_string();
            assert!(m.contains("read-only for pps"), "{m}");
            assert!(m.contains("systemctl reload pps"), "{m}");
        }
        let other = write_error(Path::new("/x"), &std::io::Error::other("disk full"));
        assert!(
            other.to_string().contains("cannot write the config file"),
            "{other}"
        );
    }

    #[test]
    fn edits_at_the_same_time_all_land_and_the_file_stays_valid() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pps.toml");
        std::fs::write(&file, FILE).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let file = file.clone();
                std::thread::spawn(move || {
                    let form = WatchForm {
                        source: "local".into(),
                        path: format!("/race{i}"),
                        exclude: (0..200 * i).map(|n| format!("p{n}")).collect(),
                        enabled: true,
                        ..WatchForm::default()
                    };
                    edit_watches_with(&file, &WatchEdit::Add(form), &[]).map(|_| ())
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let c = Config::parse(&text, Some(&file), &[]).unwrap();
        assert_eq!(c.watches.len(), 10, "every edit landed");
        assert!(text.starts_with("# my sources\n"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_added_watch_goes_after_the_comments_of_the_last_one() {
        let text = "[sources.local]\nkind = \"local\"\n\n[[watch]]\nsource = \"local\"\npath = \"/tv\"\n# targets = [\"print\"]  # default: every target\n";
        let out = apply(
            text,
            &WatchEdit::Add(WatchForm {
                source: "local".into(),
                path: "/films".into(),
                enabled: true,
                ..WatchForm::default()
            }),
        )
        .unwrap();
        assert_eq!(
            out,
            "[sources.local]\nkind = \"local\"\n\n[[watch]]\nsource = \"local\"\npath = \"/tv\"\n# targets = [\"print\"]  # default: every target\n\n[[watch]]\nsource = \"local\"\npath = \"/films\"\n"
        );
    }

    #[test]
    fn markup_and_toml_in_a_field_stay_a_string() {
        let evil = "/tv\"\n[server]\ntoken = \"x\"\n[[watch]]\npath = '/";
        let out = apply(
            FILE,
            &WatchEdit::Add(WatchForm {
                source: "local".into(),
                path: evil.into(),
                interval: "1m\"]\nenabled = false #".into(),
                exclude: vec!["a\"]\n[x]".into()],
                enabled: true,
                ..WatchForm::default()
            }),
        )
        .unwrap();
        let doc: DocumentMut = out.parse().unwrap();
        assert!(
            doc.get("server").is_none() && doc.get("x").is_none(),
            "{out}"
        );
        let w = read_watches(&out);
        assert_eq!(w.len(), 3, "{out}");
        assert_eq!(w[2].path, evil.trim());
        assert_eq!(w[2].interval, "1m\"]\nenabled = false #");
        assert!(w[2].enabled);
        assert_eq!(w[2].exclude, vec!["a\"]\n[x]".to_owned()]);
    }

    #[test]
    fn watches_read_as_written() {
        let w = read_watches(FILE);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].interval, "10m");
        assert_eq!(w[1].path, "/films");
        assert!(w[1].enabled && w[1].exclude.is_empty());
        assert!(read_watches("not toml [").is_empty());
    }

    #[test]
    fn a_watch_that_moved_is_not_edited() {
        let e = apply(
            FILE,
            &WatchEdit::Remove {
                index: 0,
                expect: "/films".into(),
            },
        )
        .unwrap_err();
        assert!(e.message().contains("reload the page"), "{e}");
        assert_eq!(e.context_value("key"), Some("watch[0]"));
    }

    #[test]
    fn an_invalid_edit_leaves_the_file_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pps.toml");
        std::fs::write(&file, FILE).unwrap();
        let form = WatchForm {
            source: "local".into(),
            path: "/tv".into(),
            interval: "soon".into(),
            enabled: true,
            ..WatchForm::default()
        };
        let e = edit_watches_with(
            &file,
            &WatchEdit::Update {
                index: 0,
                expect: "/tv".into(),
                form: form.clone(),
            },
            &[],
        )
        .unwrap_err();
        // The same message `pps check` gives for that file.
        let check = Config::parse(
            &apply(
                FILE,
                &WatchEdit::Update {
                    index: 0,
                    expect: "/tv".into(),
                    form,
                },
            )
            .unwrap(),
            Some(&file),
            &[],
        )
        .unwrap_err();
        assert_eq!(e.to_string(), check.to_string());
        assert!(e.to_string().contains("watch[0].interval"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), FILE);
        let c = edit_watches_with(
            &file,
            &WatchEdit::Enable {
                index: 0,
                expect: "/tv".into(),
                enabled: false,
            },
            &[],
        )
        .unwrap()
        .config;
        assert!(!c.watches[0].enabled);
        assert!(c.watches[1].enabled);
        let written = std::fs::read_to_string(&file).unwrap();
        assert!(
            written.contains("interval = \"10m\"\nenabled = false"),
            "{written}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
