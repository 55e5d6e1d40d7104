//! Tests of the `pps` command: one test binary, so it links once.

mod attack;
mod cli;
mod commands;
mod config;
mod first_hour;
mod server;
