//! The `pps` command: argument parsing, rendering of the `pps` library's reports, progress
//! lines, signals, exit codes and logging. Every operation itself lives in the `pps`
//! crate; the binary (`src/main.rs`) is [`cli::main`].

#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod notify;
pub mod render;
pub mod user;
