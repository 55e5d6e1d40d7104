//! The one error type of pps.
//!
//! Every failure carries three things a caller acts on: a [`ErrorKind`] (what went
//! wrong), whether it is [temporary](Error::is_temporary) (worth retrying) or permanent,
//! and context (which operation, which source or target, which path). Adapters keep
//! their own private error enums and convert at their edge, so callers only ever match
//! on this type.
//!
//! Messages and context must never hold a secret: adapters strip tokens from URLs and
//! never put credentials into an error. [`Error`]'s `Display` and `Debug` print only
//! what was put in.

use std::fmt;

/// What kind of failure this is. New kinds may be added; match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The path (or library, or section) does not exist.
    NotFound,
    /// The path exists but may not be read, or the credentials lack a permission.
    PermissionDenied,
    /// Credentials are missing, wrong or expired.
    Unauthenticated,
    /// The remote asked us to slow down (HTTP 429, 115's 405, cd2's `INTERNAL` with that text).
    Throttled,
    /// The remote was unreachable, timed out, or cut a reply short.
    Unavailable,
    /// A configuration value is wrong; the message names the key.
    ConfigInvalid,
    /// The operation is not offered by this implementation or server.
    Unsupported,
    /// A watched root listed empty or missing while pps knows it held content: a mount or
    /// cd2 is down. Nothing was committed or scanned.
    Outage,
    /// Stored state is unreadable, corrupt, or written by a newer version of pps.
    Corrupt,
    /// The target accepted the connection but refused the request (no library holds the
    /// path, a bad request).
    Rejected,
    /// Anything else.
    Unexpected,
}

impl ErrorKind {
    /// The kind's name in lower-case words, as printed in messages and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::ConfigInvalid => "config invalid",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Outage => "outage",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Rejected => "rejected",
            ErrorKind::Unexpected => "unexpected",
        }
    }

    /// Whether a failure of this kind is usually worth retrying. Constructors use it as
    /// the default; an adapter that knows better calls [`Error::temporary`] or
    /// [`Error::permanent`].
    pub fn default_temporary(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttled | ErrorKind::Unavailable | ErrorKind::Outage
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pps error: kind, retry status, message, context and an optional cause.
pub struct Error {
    kind: ErrorKind,
    temporary: bool,
    message: String,
    context: Vec<(&'static str, String)>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind`; temporary or not by [`ErrorKind::default_temporary`].
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            temporary: kind.default_temporary(),
            message: message.into(),
            context: Vec::new(),
            source: None,
        }
    }

    /// Marks the error as worth retrying.
    pub fn temporary(mut self) -> Self {
        self.temporary = true;
        self
    }

    /// Marks the error as not worth retrying.
    pub fn permanent(mut self) -> Self {
        self.temporary = false;
        self
    }

    /// Adds a piece of context, such as `("path", "/115/TV")`. Never pass a secret.
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.context.push((key, value.into()));
        self
    }

    /// Adds a piece of context unless that key is already present (the innermost
    /// layer, which knows best, wins).
    pub fn with_default(self, key: &'static str, value: impl Into<String>) -> Self {
        if self.context_value(key).is_some() {
            self
        } else {
            self.with(key, value)
        }
    }

    /// Attaches the underlying cause. Its `Display` is printed after the message, so it
    /// must not carry secrets either.
    pub fn set_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True when retrying the same operation later may succeed.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// The message without context.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// All context pairs, in the order they were added.
    pub fn context(&self) -> &[(&'static str, String)] {
        &self.context
    }

    /// The value of one context key, if present.
    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A config error's message and its file/line/key say everything; "config
        // invalid" in front of "pps.toml exists; not overwritten" only gets in the way.
        // Whether a failure is temporary is for code to act on (`is_temporary`), not
        // text for users: a message says what to do instead.
        if self.kind != ErrorKind::ConfigInvalid {
            write!(f, "{}: ", self.kind)?;
        }
        f.write_str(&self.message)?;
        if !self.context.is_empty() {
            f.write_str(" [")?;
            for (i, (k, v)) in self.context.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}: {v}")?;
            }
            f.write_str("]")?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug prints the same fields as Display, so a `{:?}` in a log is just as safe.
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("temporary", &self.temporary)
            .field("message", &self.message)
            .field("context", &self.context)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match err.kind() {
            Io::NotFound => ErrorKind::NotFound,
            Io::PermissionDenied => ErrorKind::PermissionDenied,
            Io::TimedOut | Io::Interrupted | Io::WouldBlock => ErrorKind::Unavailable,
            Io::ConnectionRefused | Io::ConnectionReset | Io::ConnectionAborted => {
                ErrorKind::Unavailable
            }
            Io::StorageFull | Io::ReadOnlyFilesystem => ErrorKind::Unavailable,
            _ => ErrorKind::Unexpected,
        };
        let message = err.to_string();
        Error::new(kind, message).set_source(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_kind_and_context() {
        let err = Error::new(ErrorKind::NotFound, "no such folder")
            .with("operation", "list")
            .with("path", "/115/TV");
        assert_eq!(
            err.to_string(),
            "not found: no such folder [operation: list, path: /115/TV]"
        );
        let config = Error::new(ErrorKind::ConfigInvalid, "pps.toml exists; not overwritten");
        assert_eq!(config.to_string(), "pps.toml exists; not overwritten");
        assert!(!err.is_temporary());
        let throttled = Error::new(ErrorKind::Throttled, "429");
        assert!(throttled.is_temporary());
        assert_eq!(throttled.to_string(), "throttled: 429");
    }

    #[test]
    fn with_default_keeps_the_inner_value() {
        let err = Error::new(ErrorKind::Unexpected, "x")
            .with("path", "/inner")
            .with_default("path", "/outer")
            .with_default("source", "cd2");
        assert_eq!(err.context_value("path"), Some("/inner"));
        assert_eq!(err.context_value("source"), Some("cd2"));
    }
}
