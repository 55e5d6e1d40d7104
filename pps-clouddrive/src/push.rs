//! Change hints from cd2's `PushMessage` stream.
//!
//! The stream is driven by whoever reads it (no task is spawned): dropping it closes
//! the connection. It reconnects with backoff when the server ends or cuts it, logs in
//! again on `FORCE_EXIT`, and ends for good, with one log line, when the server has no
//! push (`UNIMPLEMENTED`, or cd2 0.7's older message format that does not decode) or
//! refuses it permanently (a token without `allow_push_message`). Polling stays the
//! source of truth either way.

use crate::client::ClientInner;
use crate::core::{Phase, parse_error};
use crate::proto::cloud_drive_push_message::{Data, MessageType};
use crate::proto::file_system_change::ChangeType;
use crate::proto::{CloudDrivePushMessage, FileSystemChange};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use pps_core::layers::Jitter;
use pps_core::{ErrorKind, Hint};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Code, Status, Streaming};

/// What one push message means to pps.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Message {
    Hint(Hint),
    /// cd2 ended our session: log in again and reconnect.
    ForceExit,
    /// A mount point or cloud account changed: listings under it may vanish or move
    /// for a while, so an empty root is an outage until a listing proves otherwise.
    /// The name of the event, for the log.
    OutageSignal(&'static str),
    /// Transfer counts, update status and other kinds pps does not use.
    Ignore,
}

pub(crate) fn interpret(message: CloudDrivePushMessage) -> Message {
    if message.message_type == MessageType::ForceExit as i32 {
        return Message::ForceExit;
    }
    if message.message_type == MessageType::MountPointChange as i32 {
        return Message::OutageSignal(
            "MOUNT_POINT_CHANGE (a mount point was added, removed or failed)",
        );
    }
    if message.message_type == MessageType::CloudApiChange as i32 {
        return Message::OutageSignal(
            "CLOUD_API_CHANGE (a cloud account was added, removed or renamed)",
        );
    }
    match message.data {
        Some(Data::FileSystemChange(change)) => {
            hint_of(change).map_or(Message::Ignore, Message::Hint)
        }
        Some(Data::ExitedMessage(_)) => Message::ForceExit,
        None => Message::Ignore,
    }
}

fn hint_of(change: FileSystemChange) -> Option<Hint> {
    if change.path.is_empty() {
        return None;
    }
    // Create, delete and modify name one path; an unknown change type is read as a
    // change of that path too. Only a rename carries a second one.
    let new_path = if change.change_type == ChangeType::Rename as i32 {
        change.new_path.filter(|p| !p.is_empty())
    } else {
        None
    };
    Some(Hint {
        path: change.path,
        new_path,
        is_dir: change.is_directory,
    })
}

/// Why connecting failed.
enum ConnectFailure {
    /// The server has no push: end the stream.
    NoPush(String),
    /// A permanent refusal: end the stream.
    Stop(String),
    /// Try again after backoff.
    Retry(String),
    /// The token was refused: log in again at once.
    LoginAgain,
}

struct State {
    client: Arc<ClientInner>,
    stream: Option<Streaming<CloudDrivePushMessage>>,
    /// Consecutive failures, for the backoff; reset by a message.
    failures: u32,
    /// A refused token already caused one fresh login since the last success.
    logged_in_again: bool,
    jitter: Jitter,
    /// The outage signals already logged.
    signalled: std::collections::HashSet<&'static str>,
}

impl State {
    async fn connect(&mut self) -> Result<Streaming<CloudDrivePushMessage>, ConnectFailure> {
        let client = &self.client;
        let token = match client.bearer().await {
            Ok(token) => token,
            Err(err) if err.is_temporary() => return Err(ConnectFailure::Retry(err.to_string())),
            Err(err) => return Err(ConnectFailure::Stop(err.to_string())),
        };
        let request = client
            .request((), token.as_ref())
            .map_err(|e| ConnectFailure::Stop(e.to_string()))?;
        let mut grpc = client.grpc.clone();
        let reply = tokio::time::timeout(client.config.timeout, grpc.push_message(request)).await;
        let status = match reply {
            Ok(Ok(response)) => return Ok(response.into_inner()),
            Ok(Err(status)) => status,
            Err(_) => return Err(ConnectFailure::Retry("no answer in time".to_owned())),
        };
        Err(self.classify(&status, token.is_some()).await)
    }

    async fn classify(&mut self, status: &Status, had_token: bool) -> ConnectFailure {
        let text = parse_error(status, Phase::Call, "push", "/", &self.client.source).to_string();
        match status.code() {
            Code::Unimplemented => ConnectFailure::NoPush(text),
            Code::Unauthenticated if had_token && !self.logged_in_again => {
                self.logged_in_again = true;
                self.client.forget_token(None).await;
                ConnectFailure::LoginAgain
            }
            Code::Unauthenticated | Code::PermissionDenied => ConnectFailure::Stop(text),
            _ => ConnectFailure::Retry(text),
        }
    }

    fn backoff(&self) -> Duration {
        let exp = self.failures.saturating_sub(1).min(6);
        let delay = Duration::from_secs(1u64 << exp).min(Duration::from_secs(60));
        delay / 2 + delay.mul_f64(self.jitter.next_f64() / 2.0)
    }

    /// The next hint, or `None` when the stream is over for good.
    async fn next(&mut self) -> Option<Hint> {
        let source = self.client.source.clone();
        loop {
            let stream = match self.stream.as_mut() {
                Some(stream) => stream,
                None => {
                    if self.failures > 0 {
                        tokio::time::sleep(self.backoff()).await;
                    }
                    match self.connect().await {
                        Ok(stream) => {
                            tracing::debug!(source = %source, "push channel open");
                            self.stream.insert(stream)
                        }
                        Err(ConnectFailure::NoPush(why)) => {
                            tracing::info!(source = %source, "cd2 offers no push events; polling only: {why}");
                            return None;
                        }
                        Err(ConnectFailure::Stop(why)) => {
                            tracing::warn!(source = %source, "push events refused; polling only: {why}");
                            return None;
                        }
                        Err(ConnectFailure::LoginAgain) => continue,
                        Err(ConnectFailure::Retry(why)) => {
                            self.failures += 1;
                            tracing::debug!(source = %source, failures = self.failures, "push channel failed: {why}");
                            continue;
                        }
                    }
                }
            };
            match stream.message().await {
                Ok(Some(message)) => {
                    self.failures = 0;
                    self.logged_in_again = false;
                    match interpret(message) {
                        Message::Hint(hint) => return Some(hint),
                        Message::ForceExit => {
                            tracing::info!(source = %source, "cd2 sent FORCE_EXIT; authenticating again");
                            self.client.forget_token(None).await;
                            self.stream = None;
                        }
                        Message::OutageSignal(what) => {
                            crate::core::Counters::bump(&self.client.counters.outage_signals);
                            // Logged once per kind: a flapping mount must not flood the log.
                            if self.signalled.insert(what) {
                                tracing::warn!(source = %source, "cd2 reports {what}: folders under it may list empty or missing for a while; pps treats an empty or missing watched root as an outage, never as deletions, until a listing shows it again");
                            } else {
                                tracing::debug!(source = %source, "cd2 reports {what} again");
                            }
                        }
                        Message::Ignore => {}
                    }
                }
                Ok(None) => {
                    // The server closed the stream cleanly: reconnect after a pause,
                    // so a server that closes at once is not hammered.
                    self.stream = None;
                    self.failures += 1;
                }
                Err(status) if is_decode_failure(&status) => {
                    tracing::info!(
                        source = %source,
                        "cd2 sends push messages in an older format pps cannot read; polling only"
                    );
                    return None;
                }
                Err(status) => {
                    self.stream = None;
                    self.failures += 1;
                    let err = parse_error(&status, Phase::MidStream, "push", "/", &source);
                    if err.kind() == ErrorKind::Unauthenticated {
                        self.client.forget_token(None).await;
                    }
                    tracing::debug!(source = %source, "push channel cut: {err}");
                }
            }
        }
    }
}

/// True for tonic's "failed to decode Protobuf message" status: the server speaks an
/// older push format (cd2 0.7 put a list under field 5).
pub(crate) fn is_decode_failure(status: &Status) -> bool {
    status.code() == Code::Internal && status.message().contains("decode")
}

/// The hint stream of one client.
pub(crate) fn hints(client: Arc<ClientInner>) -> BoxStream<'static, Hint> {
    let state = State {
        client,
        stream: None,
        failures: 0,
        logged_in_again: false,
        signalled: std::collections::HashSet::new(),
        jitter: Jitter::new(),
    };
    futures_util::stream::unfold(state, |mut state| async move {
        let hint = state.next().await?;
        Some((hint, state))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: ChangeType, path: &str, new_path: Option<&str>) -> CloudDrivePushMessage {
        CloudDrivePushMessage {
            message_type: MessageType::FileSystemChange as i32,
            data: Some(Data::FileSystemChange(FileSystemChange {
                change_type: kind as i32,
                is_directory: true,
                path: path.into(),
                new_path: new_path.map(String::from),
                the_file: None,
            })),
        }
    }

    #[test]
    fn messages_become_hints() {
        let hint = |path: &str, new: Option<&str>| {
            Message::Hint(Hint {
                path: path.into(),
                new_path: new.map(String::from),
                is_dir: true,
            })
        };
        assert_eq!(
            interpret(change(ChangeType::Create, "/a", None)),
            hint("/a", None)
        );
        assert_eq!(
            interpret(change(ChangeType::Rename, "/a", Some("/b"))),
            hint("/a", Some("/b"))
        );
        assert_eq!(
            interpret(change(ChangeType::Delete, "/a", Some("/b"))),
            hint("/a", None)
        );
        let mut unknown = change(ChangeType::Modify, "/c", None);
        if let Some(Data::FileSystemChange(c)) = unknown.data.as_mut() {
            c.change_type = 42;
        }
        assert_eq!(interpret(unknown), hint("/c", None));
        let exit = CloudDrivePushMessage {
            message_type: MessageType::ForceExit as i32,
            data: None,
        };
        assert_eq!(interpret(exit), Message::ForceExit);
        let other = CloudDrivePushMessage {
            message_type: 7,
            data: None,
        };
        assert_eq!(interpret(other), Message::Ignore);
        let kind = |t: i32| {
            interpret(CloudDrivePushMessage {
                message_type: t,
                data: None,
            })
        };
        assert!(matches!(kind(5), Message::OutageSignal(w) if w.starts_with("MOUNT_POINT_CHANGE")));
        assert!(matches!(kind(9), Message::OutageSignal(w) if w.starts_with("CLOUD_API_CHANGE")));
        assert_eq!(kind(10), Message::Ignore, "BACKUP_SYNC_ISSUE is ignored");
        // MODIFY names the path that changed.
        assert_eq!(
            interpret(change(ChangeType::Modify, "/m", None)),
            hint("/m", None)
        );
        assert!(is_decode_failure(&Status::internal(
            "failed to decode Protobuf message: invalid wire type"
        )));
    }
}
