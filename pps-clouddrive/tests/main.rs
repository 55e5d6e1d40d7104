//! Integration tests: the client against the mock over real loopback gRPC (the rate
//! limit and retry layers are tested in pps-core). Time is tokio's paused clock where
//! no socket waits: backoff, latency and token lifetimes advance instantly and exactly;
//! nothing sleeps on the wall clock.

// Test helpers are documented by the tests that use them.
#![allow(missing_docs)]

mod mock_server;
mod push;
