//! The `pps` command as a library: the config file, assembling an engine from it, and
//! the subcommands. The binary (`src/main.rs`) only parses arguments, sets up logging
//! and prints errors; the Python package reuses the config and assembly.

#![warn(missing_docs)]

pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod duration;
pub mod server;
pub mod walk;
