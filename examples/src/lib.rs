//! Runnable examples of pps, in `examples/`:
//!
//! - `custom_source_and_target`: embed pps with your own directory source and scan
//!   target in a few dozen lines.
//! - `once_from_config`: load a `pps.toml` through the `pps` library and run one pass,
//!   as `pps once` does (your `PPS_CONFIG`, or a config in a temporary folder).
//! - `list_clouddrive`: list a CloudDrive2 folder (`CD2_URL` and `CD2_TOKEN`, or a mock
//!   server started in-process when they are unset).
//! - `scan_plex`: ask Plex to rescan one folder (`PLEX_URL` and `PLEX_TOKEN`, or a
//!   mock Plex when they are unset).
//!
//! Run one with `cargo run -p pps-examples --example NAME`; `cargo test -p pps-examples`
//! runs them all against the mock servers.
