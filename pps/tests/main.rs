//! Tests of the `pps` library: one test binary, so it links once.

// Test helpers are documented by the tests that use them.
#![allow(missing_docs)]

mod config;
mod house;
mod http_sources;
mod notify;
mod service;
mod ui_attack;
mod ui_pages;
