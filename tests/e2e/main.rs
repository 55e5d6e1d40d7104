//! End-to-end tests that combine pps's crates with real processes and files.
//!
//! The reliability suite (RELIABILITY.md): one module per scenario, `s1_crash` to
//! `s7_secrets`, each printing a one-line summary (`--nocapture`). `PPS_SOAK=1` runs the
//! longer variant.

// Test helpers are documented by the tests that use them.
#![allow(missing_docs)]

mod common;
mod crash;
mod s1_crash;
mod s2_cd2_faults;
mod s3_media_down;
mod s4_outage;
mod s5_store;
mod s6_bad_input;
mod s7_secrets;
