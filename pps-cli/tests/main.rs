//! Tests of the `pps` command: one test binary, so it links once.

// Test helpers are documented by the tests that use them.
#![allow(missing_docs)]

mod attack;
mod cli;
mod commands;
mod first_hour;
mod install;
mod second_round;
mod server;
mod ui;
mod user;
