//! Integration tests: the client against the mock over real loopback gRPC, and the
//! layers on their own. Time is tokio's paused clock throughout: waits, backoff,
//! latency and token lifetimes advance instantly and exactly; nothing sleeps on the
//! wall clock.

mod layers;
mod mock_server;
mod push;
