//! rclone's error replies mapped to error kinds, and its list items as entries.

use crate::http::{Http, Reply, is_throttle_text, parse_time};
use pps_core::{Entry, EntryKind, Error, ErrorKind};
use serde::Deserialize;

/// rclone's error body: `{"error": "...", "status": N, "input": {...}, "path": "..."}`.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
}

/// The reply's JSON, or the error it carries. `endpoint` is the rc command.
pub(crate) fn reply_json(
    http: &Http,
    reply: &Reply,
    endpoint: &str,
    operation: &str,
    path: &str,
) -> Result<serde_json::Value, Error> {
    let context = |e: Error| {
        e.with("operation", operation.to_owned())
            .with("path", path.to_owned())
            .with("source", http.shown.clone())
    };
    let not_rclone = || {
        context(
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{} answered {endpoint} with something that is not rclone's JSON: not an rclone rc server (is the url `rclone rcd`'s, port 5572 by default?)",
                    http.shown
                ),
            )
            .permanent(),
        )
    };
    if reply.status == 200 {
        return serde_json::from_slice(&reply.body).map_err(|_| not_rclone());
    }
    let Ok(body) = serde_json::from_slice::<ErrorBody>(&reply.body) else {
        return Err(match reply.status {
            401 => context(
                Error::new(
                    ErrorKind::Unauthenticated,
                    "rclone refused the user name and password (its --rc-user and --rc-pass)",
                )
                .permanent(),
            ),
            429 => {
                context(Error::new(ErrorKind::Throttled, "rclone answered HTTP 429").temporary())
            }
            502..=504 => context(
                Error::new(
                    ErrorKind::Unavailable,
                    format!("HTTP {} from in front of rclone", reply.status),
                )
                .temporary(),
            ),
            _ => not_rclone(),
        });
    };
    Err(context(parse_error(reply.status, &body.error)))
}

/// The one mapping from rclone's HTTP status and error text to a pps error.
pub(crate) fn parse_error(status: u16, message: &str) -> Error {
    let lower = message.to_ascii_lowercase();
    let said = format!("rclone answered {status}: {message}");
    if status == 429 || is_throttle_text(message) {
        return Error::new(ErrorKind::Throttled, said).temporary();
    }
    if lower.contains("couldn't find method") {
        return Error::new(
            ErrorKind::Unsupported,
            format!("{said} (this rclone is too old, or not started with the rc)"),
        )
        .permanent();
    }
    match status {
        401 => Error::new(
            ErrorKind::Unauthenticated,
            format!(
                "rclone refused the user name and password (its --rc-user and --rc-pass): {message}"
            ),
        )
        .permanent(),
        403 => Error::new(ErrorKind::PermissionDenied, said).permanent(),
        404 => Error::new(ErrorKind::NotFound, said).permanent(),
        _ if lower.contains("not found") => Error::new(ErrorKind::NotFound, said).permanent(),
        _ if lower.contains("didn't find section in config file") => Error::new(
            ErrorKind::NotFound,
            format!("{said} (no such remote in rclone's config: check `remote`)"),
        )
        .permanent(),
        502..=504 => Error::new(ErrorKind::Unavailable, said).temporary(),
        _ if lower.contains("timeout")
            || lower.contains("connection reset")
            || lower.contains("unexpected eof") =>
        {
            Error::new(ErrorKind::Unavailable, said).temporary()
        }
        _ => Error::new(ErrorKind::Unexpected, said).permanent(),
    }
}

/// One item of `operations/list`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Item {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    size: i64,
    #[serde(default)]
    mod_time: Option<String>,
    #[serde(default)]
    is_dir: bool,
}

/// The reply of `operations/list`.
#[derive(Deserialize)]
pub(crate) struct ListReply {
    #[serde(default)]
    pub(crate) list: Option<Vec<Item>>,
}

/// An item as an entry; `None` for an item without a usable name.
pub(crate) fn entry_of(item: &Item) -> Option<Entry> {
    let name = item.name.as_str();
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    Some(Entry {
        name: name.to_owned(),
        kind: if item.is_dir {
            EntryKind::Dir
        } else {
            EntryKind::File
        },
        // rclone reports -1 for a folder's (and an unknown) size.
        size: if item.is_dir {
            0
        } else {
            u64::try_from(item.size).unwrap_or(0)
        },
        mtime: item.mod_time.as_deref().and_then(parse_time),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        use ErrorKind::*;
        let k = |status, msg: &str| {
            let e = parse_error(status, msg);
            (e.kind(), e.is_temporary())
        };
        assert_eq!(k(404, "directory not found"), (NotFound, false));
        assert_eq!(
            k(500, "error in ListJSON: directory not found"),
            (NotFound, false)
        );
        assert_eq!(
            k(404, "couldn't find method \"operations/list\""),
            (Unsupported, false)
        );
        assert_eq!(k(500, "429 Too Many Requests"), (Throttled, true));
        assert_eq!(k(401, "unauthorized"), (Unauthenticated, false));
        assert_eq!(k(503, "x"), (Unavailable, true));
        assert_eq!(k(500, "boom"), (Unexpected, false));
    }

    #[test]
    fn items_become_entries() {
        let i: Item = serde_json::from_str(
            r#"{"Path":"a/b","Name":"b","Size":-1,"MimeType":"inode/directory","ModTime":"2023-11-14T22:13:20Z","IsDir":true}"#,
        )
        .unwrap();
        let e = entry_of(&i).unwrap();
        assert_eq!((e.kind, e.size), (EntryKind::Dir, 0));
        assert!(e.mtime.is_some());
    }
}
