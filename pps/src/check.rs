//! `pps check`: the config, every source and target reached, and where each watch's
//! scans land.

use crate::app::App;
use crate::config::SourceConfig;
use pps_core::mapping::target_contains;
use pps_core::{Library, ListOptions, TargetInfo};
use std::collections::BTreeMap;

/// How a source answered.
#[derive(Debug, Clone)]
pub enum SourceOutcome {
    /// A local folder: nothing to reach.
    Local,
    /// cd2 answered and took the token.
    Ready,
    /// cd2 answered, but is starting, logged out or in error (the notes say which).
    Reachable(Vec<String>),
    /// Not reached, or the token refused: why, in plain words.
    Failed(String),
}

/// One source in [`CheckReport`].
#[derive(Debug, Clone)]
pub struct SourceCheck {
    /// Its name.
    pub name: String,
    /// `local` or `clouddrive2 URL`.
    pub what: String,
    /// How it answered.
    pub outcome: SourceOutcome,
}

/// One target in [`CheckReport`].
#[derive(Debug, Clone)]
pub struct TargetCheck {
    /// Its name.
    pub name: String,
    /// `plex`, `emby`, ...
    pub kind: &'static str,
    /// What it said of itself, or why it could not be reached.
    pub result: std::result::Result<TargetInfo, String>,
}

/// How a watch's root listed.
#[derive(Debug, Clone)]
pub enum RootOutcome {
    /// Listed, with this many entries.
    Listed(usize),
    /// The listing failed.
    Failed(String),
    /// Not tried: its source failed.
    NotChecked,
    /// Its source is not configured (cannot happen after validation).
    NoSource,
}

/// Where a watch's scans land on one target.
#[derive(Debug, Clone)]
pub enum Landing {
    /// No rule of the target's `path_mapping` covers the root.
    Unmapped,
    /// Mapped, but the target was not reached.
    Unreached(String),
    /// Mapped; the target has no libraries to match (a command, stdout).
    Anywhere(String),
    /// Mapped into no library: every scan would be parked.
    NoLibrary(String),
    /// Mapped into these libraries (name, id).
    Libraries(String, Vec<(String, String)>),
}

/// One watch in [`CheckReport`].
#[derive(Debug, Clone)]
pub struct WatchCheck {
    /// `source:root`.
    pub label: String,
    /// Its line in the config file (0 without one).
    pub line: usize,
    /// How the root listed.
    pub root: RootOutcome,
    /// Per target of the watch.
    pub targets: Vec<(String, Landing)>,
}

/// What `pps check` found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The config file, or `(none)`.
    pub file: String,
    /// Counts of sources, targets and watches.
    pub counts: (usize, usize, usize),
    /// The store file.
    pub store: String,
    /// Set when the config has no `[[watch]]`: the problem, in words.
    pub no_watches: Option<String>,
    /// Per source.
    pub sources: Vec<SourceCheck>,
    /// Per target.
    pub targets: Vec<TargetCheck>,
    /// Per watch.
    pub watches: Vec<WatchCheck>,
}

impl CheckReport {
    /// True when nothing is wrong: every source and target reached, every root listed,
    /// every watch landing in a library of each target that has libraries.
    pub fn ok(&self) -> bool {
        self.no_watches.is_none()
            && self
                .sources
                .iter()
                .all(|s| matches!(s.outcome, SourceOutcome::Local | SourceOutcome::Ready))
            && self.targets.iter().all(|t| t.result.is_ok())
            && self.watches.iter().all(|w| {
                matches!(w.root, RootOutcome::Listed(_) | RootOutcome::NotChecked)
                    && w.targets
                        .iter()
                        .all(|(_, l)| !matches!(l, Landing::NoLibrary(_)))
            })
    }
}

/// Reaches every source (cd2: its health, then one authenticated call, neither
/// retried) and target, and works out where each watch's scans land.
pub async fn check(app: &App) -> CheckReport {
    Checker::of(app).run().await
}

/// What [`check`] needs of an app, owned: the web UI keeps one to run the check on
/// demand beside the running service.
#[derive(Debug, Clone)]
pub struct Checker {
    config: crate::Config,
    clouddrives: BTreeMap<String, pps_clouddrive::CloudDrive>,
    remotes: BTreeMap<String, crate::app::Remote>,
    targets: BTreeMap<String, std::sync::Arc<dyn pps_core::ScanTarget>>,
    sources: BTreeMap<String, std::sync::Arc<dyn pps_core::DirectorySource>>,
    watches: Vec<(crate::config::WatchConfig, pps_core::Watch)>,
    no_watches: Option<String>,
}

impl Checker {
    /// The parts of `app` a check reaches.
    pub fn of(app: &App) -> Self {
        Checker {
            config: app.config.clone(),
            clouddrives: app.clouddrives.clone(),
            remotes: app.remotes.clone(),
            targets: app.targets.clone(),
            sources: app.sources.clone(),
            watches: app.watches.clone(),
            no_watches: app.require_watches().err().map(|e| e.to_string()),
        }
    }

    /// Where a watch of `path` would land on each of `targets` (all targets when
    /// empty), as `pps check` works it out: one call to each target for its libraries.
    /// The web UI asks this when a watch is saved, to warn as `pps check` would.
    pub async fn landings(&self, path: &str, targets: &[String]) -> Vec<(String, Landing)> {
        let mut out = Vec::new();
        for (name, t) in &self.targets {
            if !targets.is_empty() && !targets.contains(name) {
                continue;
            }
            let Some(tc) = self.config.targets.get(name) else {
                continue;
            };
            let libraries = t.check().await.ok().map(|i| i.libraries);
            out.push((name.clone(), landing(tc, path, libraries.as_ref())));
        }
        out
    }

    /// Lists `path` at `source` once, as the check does for a watch root: the web UI
    /// asks before it saves a watch. `None` when no such source is configured.
    pub async fn list_root(&self, source: &str, path: &str) -> Option<pps_core::Result<usize>> {
        let src = self.sources.get(source)?;
        Some(
            src.list(path, ListOptions::default())
                .await
                .map(|entries| entries.len()),
        )
    }

    /// Runs the check (one call per cd2 source and per watch root, one per target).
    pub async fn run(&self) -> CheckReport {
        self.report().await
    }

    async fn report(&self) -> CheckReport {
        let app = self;
        let file = app
            .config
            .file
            .as_ref()
            .map_or("(none)".to_owned(), |f| f.display().to_string());
        let mut sources = Vec::new();
        for (name, sc) in &app.config.sources {
            match sc {
                SourceConfig::Local { .. } => sources.push(SourceCheck {
                    name: name.clone(),
                    what: "local".to_owned(),
                    outcome: SourceOutcome::Local,
                }),
                SourceConfig::CloudDrive2 { settings, .. } => {
                    let Some(cd) = app.clouddrives.get(name) else {
                        continue;
                    };
                    let outcome = match cd.check().await {
                        Ok(info) => {
                            let mut notes = Vec::new();
                            if !info.system_ready {
                                notes.push("cd2 is still starting".to_owned());
                            }
                            if !info.is_login {
                                notes.push("cd2 is not logged in to its cloud account".to_owned());
                            }
                            if info.has_error {
                                notes.push(format!(
                                    "cd2 reports an error: {}",
                                    info.system_message.clone().unwrap_or_default()
                                ));
                            }
                            if notes.is_empty() {
                                SourceOutcome::Ready
                            } else {
                                SourceOutcome::Reachable(notes)
                            }
                        }
                        Err(e) => SourceOutcome::Failed(e.message().to_owned()),
                    };
                    sources.push(SourceCheck {
                        name: name.clone(),
                        what: format!("clouddrive2 {}", settings.display_url()),
                        outcome,
                    });
                }
                SourceConfig::OpenList { settings, .. } => {
                    let Some(crate::app::Remote::OpenList(ol)) = app.remotes.get(name) else {
                        continue;
                    };
                    let outcome = match ol.check().await {
                        Ok(()) => SourceOutcome::Ready,
                        Err(e) => SourceOutcome::Failed(e.message().to_owned()),
                    };
                    sources.push(SourceCheck {
                        name: name.clone(),
                        what: format!("openlist {}", settings.display_url()),
                        outcome,
                    });
                }
                SourceConfig::Rclone { settings, .. } => {
                    let Some(crate::app::Remote::Rclone(rc)) = app.remotes.get(name) else {
                        continue;
                    };
                    let outcome = match rc.check().await {
                        Ok(()) => SourceOutcome::Ready,
                        Err(e) => SourceOutcome::Failed(e.message().to_owned()),
                    };
                    sources.push(SourceCheck {
                        name: name.clone(),
                        what: format!("rclone {} {}", settings.display_url(), settings.remote),
                        outcome,
                    });
                }
            }
        }
        let down: Vec<&str> = sources
            .iter()
            .filter(|s| matches!(s.outcome, SourceOutcome::Failed(_)))
            .map(|s| s.name.as_str())
            .collect();
        let mut targets = Vec::new();
        let mut libraries: BTreeMap<String, Vec<Library>> = BTreeMap::new();
        for (name, t) in &app.targets {
            let kind = app.config.targets[name].kind.name();
            let result = match t.check().await {
                Ok(info) => {
                    libraries.insert(name.clone(), info.libraries.clone());
                    Ok(info)
                }
                Err(e) => Err(e.message().to_owned()),
            };
            targets.push(TargetCheck {
                name: name.clone(),
                kind,
                result,
            });
        }
        let mut watches = Vec::new();
        for (wc, _) in &app.watches {
            let root = match app.sources.get(&wc.source) {
                Some(_) if down.contains(&wc.source.as_str()) => RootOutcome::NotChecked,
                Some(src) => match src.list(&wc.path, ListOptions::default()).await {
                    Ok(entries) => RootOutcome::Listed(entries.len()),
                    Err(e) => RootOutcome::Failed(e.to_string()),
                },
                None => RootOutcome::NoSource,
            };
            let mut lands = Vec::new();
            for t in &wc.targets {
                let tc = &app.config.targets[t];
                let landing = landing(tc, &wc.path, libraries.get(t));
                lands.push((t.clone(), landing));
            }
            watches.push(WatchCheck {
                label: wc.label(),
                line: wc.line,
                root,
                targets: lands,
            });
        }
        CheckReport {
            file,
            counts: (
                app.config.sources.len(),
                app.config.targets.len(),
                app.config.watches.len(),
            ),
            store: app.config.store.display().to_string(),
            no_watches: app.no_watches.clone(),
            sources,
            targets,
            watches,
        }
    }
}

/// Where `path` lands on a target with `libraries` (`None`: the target was not reached).
fn landing(
    tc: &crate::config::TargetConfig,
    path: &str,
    libraries: Option<&Vec<Library>>,
) -> Landing {
    match tc.mapping.map(path) {
        None => Landing::Unmapped,
        Some(mapped) => match libraries {
            None => Landing::Unreached(mapped),
            Some(libs) if libs.is_empty() => Landing::Anywhere(mapped),
            Some(libs) => {
                let hit: Vec<(String, String)> = libs
                    .iter()
                    .filter(|l| {
                        l.locations.iter().any(|loc| {
                            target_contains(loc, &mapped) || target_contains(&mapped, loc)
                        })
                    })
                    .map(|l| (l.name.clone(), l.id.clone()))
                    .collect();
                if hit.is_empty() {
                    Landing::NoLibrary(mapped)
                } else {
                    Landing::Libraries(mapped, hit)
                }
            }
        },
    }
}
