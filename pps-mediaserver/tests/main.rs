//! Integration tests of pps-mediaserver: every target against a server (wiremock) or a
//! program that receives real requests, checking the exact method, path, headers,
//! query and body.

// Test helpers are documented by the tests that use them.
#![allow(missing_docs)]

mod command;
mod common;
mod confirm;
mod emby;
mod plex;
