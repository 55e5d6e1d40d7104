//! OpenList's reply envelope, the one mapping from its codes to error kinds, and its
//! file records as entries.

use crate::http::{Http, Reply, is_throttle_text, parse_time};
use pps_core::{Entry, EntryKind, Error, ErrorKind};
use serde::Deserialize;

/// Every OpenList reply: `{"code": 200, "message": "success", "data": …}`. Errors come
/// with HTTP status 200 too, so `code` is what to read.
#[derive(Deserialize)]
struct Envelope {
    code: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    data: serde_json::Value,
}

/// The context key set on a refusal of `refresh: true` (no write permission), so the
/// source can list again without it.
pub(crate) const REFRESH_REFUSED: &str = "refresh";

/// `data` of a reply, or the error it carries. A reply that is not OpenList's envelope
/// is a server that is not OpenList (a wrong port, another web application).
pub(crate) fn envelope(
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
    let parsed = serde_json::from_slice::<Envelope>(&reply.body);
    if reply.status != 200 {
        // A reverse proxy in front, or an OpenList version that sets the HTTP status too.
        let message = parsed
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_default();
        let err = match reply.status {
            404 if parsed.is_err() => Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{} answered HTTP 404 for {endpoint}: not an OpenList server (is the url OpenList's, port 5244 by default?)",
                    http.shown
                ),
            )
            .permanent(),
            code => return Err(context(parse_error(i64::from(code), &message))),
        };
        return Err(context(err));
    }
    let envelope = parsed.map_err(|_| {
        context(
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{} answered {endpoint} with something that is not OpenList's JSON reply: not an OpenList server (is the url OpenList's, port 5244 by default?)",
                    http.shown
                ),
            )
            .permanent(),
        )
    })?;
    if envelope.code == 200 {
        Ok(envelope.data)
    } else {
        Err(context(parse_error(envelope.code, &envelope.message)))
    }
}

/// The one mapping from an OpenList `code` and `message` to a pps error (no context).
pub(crate) fn parse_error(code: i64, message: &str) -> Error {
    let lower = message.to_ascii_lowercase();
    let said = if message.is_empty() {
        format!("OpenList answered code {code}")
    } else {
        format!("OpenList answered code {code}: {message}")
    };
    if code == 429 || is_throttle_text(message) {
        return Error::new(ErrorKind::Throttled, said).temporary();
    }
    match code {
        401 => Error::new(ErrorKind::Unauthenticated, said).permanent(),
        403 if lower.contains("refresh") => Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "OpenList refused `refresh`: the user has no write permission here ({message}); give it write permission, or set `refresh = false`"
            ),
        )
        .permanent()
        .with(REFRESH_REFUSED, "refused"),
        403 if lower.contains("password") => Error::new(
            ErrorKind::PermissionDenied,
            format!("{said} (a password-protected folder: set `folder_password`)"),
        )
        .permanent(),
        403 => Error::new(ErrorKind::PermissionDenied, said).permanent(),
        404 => Error::new(ErrorKind::NotFound, said).permanent(),
        // OpenList answers a missing path with 500 "object not found" (or "storage not
        // found" above any storage).
        _ if lower.contains("not found") || lower.contains("not exist") => {
            Error::new(ErrorKind::NotFound, said).permanent()
        }
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

/// One record of `content` (and the `data` of `/api/fs/get`).
#[derive(Deserialize)]
pub(crate) struct Object {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    size: i64,
    #[serde(default)]
    is_dir: bool,
    #[serde(default)]
    modified: Option<String>,
}

/// `data` of `/api/fs/list`; a `null` content is an empty folder.
#[derive(Deserialize)]
pub(crate) struct ListData {
    #[serde(default)]
    pub(crate) content: Option<Vec<Object>>,
}

/// A record as an entry; `None` for a record without a usable name.
pub(crate) fn entry_of(object: &Object) -> Option<Entry> {
    let name = object.name.as_str();
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    let kind = if object.is_dir {
        EntryKind::Dir
    } else {
        EntryKind::File
    };
    Some(Entry {
        name: name.to_owned(),
        kind,
        size: if object.is_dir {
            0
        } else {
            u64::try_from(object.size).unwrap_or(0)
        },
        mtime: object.modified.as_deref().and_then(parse_time),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        use ErrorKind::*;
        let k = |code, msg: &str| {
            let e = parse_error(code, msg);
            (e.kind(), e.is_temporary())
        };
        assert_eq!(k(401, "token is invalidated"), (Unauthenticated, false));
        assert_eq!(
            k(403, "Refresh without permission"),
            (PermissionDenied, false)
        );
        assert_eq!(
            parse_error(403, "Refresh without permission").context_value(REFRESH_REFUSED),
            Some("refused")
        );
        assert_eq!(
            k(500, "failed get objs: object not found"),
            (NotFound, false)
        );
        assert_eq!(
            k(500, "storage not found; please add a storage first"),
            (NotFound, false)
        );
        assert_eq!(
            k(500, "http error: 429 Too Many Requests"),
            (Throttled, true)
        );
        assert_eq!(k(500, "115: code 770004 访问频率过高"), (Throttled, true));
        assert_eq!(k(503, ""), (Unavailable, true));
        assert_eq!(k(500, "disk on fire"), (Unexpected, false));
    }

    #[test]
    fn records_become_entries() {
        let o: Object = serde_json::from_str(
            r#"{"name":"a.mkv","size":5,"is_dir":false,"modified":"0001-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let e = entry_of(&o).unwrap();
        assert_eq!((e.size, e.mtime), (5, None));
        let bad: Object = serde_json::from_str(r#"{"name":"a/b","is_dir":true}"#).unwrap();
        assert!(entry_of(&bad).is_none());
        let d: ListData = serde_json::from_str(r#"{"content":null,"total":0}"#).unwrap();
        assert!(d.content.is_none());
    }
}
