//! Load a `pps.toml` through the `pps` library and run one pass, as `pps once` does.
//!
//! With `PPS_CONFIG` set it uses your config (and its store); otherwise it writes a
//! small one into a temporary folder: a local watch of a folder it fills, sent to the
//! stdout target. The first pass records the baseline; a file added after it is found
//! by the second.

use pps::{Access, App, Config};
use std::path::PathBuf;

#[cfg_attr(test, allow(dead_code))]
#[tokio::main]
async fn main() -> pps_core::Result<()> {
    let scratch = tempfile::tempdir().map_err(pps_core::Error::from)?;
    let file = match std::env::var_os("PPS_CONFIG") {
        Some(f) => PathBuf::from(f),
        None => {
            let media = scratch.path().join("media");
            std::fs::create_dir_all(media.join("Show/S01")).map_err(pps_core::Error::from)?;
            let file = scratch.path().join("pps.toml");
            std::fs::write(
                &file,
                format!(
                    "[sources.disk]\nkind = \"local\"\n\n[targets.print]\nkind = \"stdout\"\n\n[[watch]]\nsource = \"disk\"\npath = \"{}\"\n",
                    media.display()
                ),
            )
            .map_err(pps_core::Error::from)?;
            file
        }
    };
    // A writer takes the store's lock, as `pps run` does: one lister per store.
    let app = App::build_for(Config::load(&file)?, Access::Writer("once_from_config"))?;
    let first = pps::once::once(&app, true).await?;
    for (watch, pass) in &first.passes {
        match pass {
            Ok(p) if p.baseline => println!("{watch}: baseline of {} folders", p.folders_listed),
            Ok(p) => println!("{watch}: {} changes", p.changes.len()),
            Err(e) => println!("{watch}: {e}"),
        }
    }
    if std::env::var_os("PPS_CONFIG").is_none() {
        let (_, w) = &app.watches[0];
        std::fs::write(format!("{}/Show/S01/e1.mkv", w.root), b"x")
            .map_err(pps_core::Error::from)?;
        let second = pps::once::once(&app, true).await?;
        let changes: Vec<_> = second
            .passes
            .iter()
            .filter_map(|(_, p)| p.as_ref().ok())
            .flat_map(|p| p.changes.iter())
            .collect();
        for c in &changes {
            println!("found: {} {}", c.update, c.path);
        }
        assert_eq!(changes.len(), 1, "the new episode, once");
        assert!(second.ok(), "delivered to the stdout target");
    }
    Ok(())
}

#[test]
fn runs() {
    // The example itself, as CI runs it: on a config in a temporary folder.
    main().expect("the example runs");
}
