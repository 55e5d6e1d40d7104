//! End-to-end tests that combine pps's crates with real processes and files.

mod crash;
