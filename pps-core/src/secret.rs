//! A string that must never be printed: tokens, API keys, passwords.

use std::fmt;

/// A secret value. `Debug` and `Display` print `***`; the value is reachable only
/// through [`Secret::expose`], so every place that uses it is easy to find and review.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself: only for putting it into a request header or body.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// A URL as it may appear in errors and logs: `user:password@`, `?query` and
/// `#fragment` removed, so a token a user put there (`?X-Plex-Token=...`) never reaches a
/// log or a message. The one redactor of pps: every crate shows URLs through it.
pub fn redact_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or(authority);
    match scheme {
        Some(scheme) => format!("{scheme}://{host}{path}"),
        None => format!("{host}{path}"),
    }
}

/// Checks a server URL from a config: `http://` or `https://`, a host (with a valid
/// port), no credentials and no query (credentials have keys of their own and never
/// travel in a URL). The message never echoes more than [`redact_url`] shows.
pub fn check_url(url: &str) -> Result<(), String> {
    let shown = redact_url(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        // Suggest the user's own host and port: a fixed example (Plex's 32400) misleads
        // for a cd2 source, whose port is 19798.
        return Err(format!(
            "`{shown}` is not a URL: it lacks http:// or https://; write e.g. http://{shown}"
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "the URL scheme must be http or https, not `{scheme}`"
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("put credentials in `token`/`api_key`/`api_token`, not in the URL".to_owned());
    }
    if rest.contains('?') {
        return Err("the URL may not carry a query (credentials belong in `token`/`api_key`, never in a URL)".to_owned());
    }
    let invalid = |why: &str| Err(format!("`{shown}` is not a valid URL: {why}"));
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, rest)) => (h, rest.strip_prefix(':')),
            None => return invalid("an IPv6 host lacks its closing `]`"),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the URL has no host".to_owned());
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || "<>\\^`{|}\"".contains(c))
    {
        return invalid("the host holds characters a host cannot have");
    }
    if let Some(p) = port
        && (p.is_empty() || p.parse::<u16>().is_err())
    {
        return invalid("the port is not a number from 1 to 65535");
    }
    Ok(())
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_query_and_fragment() {
        assert_eq!(
            redact_url("http://bob:hunter2@plex.lan:32400/x?X-Plex-Token=abc#f"),
            "http://plex.lan:32400/x"
        );
        assert_eq!(redact_url("plex.lan:32400/?t=1"), "plex.lan:32400/");
        assert!(check_url("http://127.0.0.1:32400").is_ok());
        assert!(check_url("https://[::1]:8096/emby").is_ok());
        let bad = [
            ("127.0.0.1:32400", "not a URL"),
            ("ftp://x", "scheme"),
            ("http://u:pw@host", "credentials"),
            ("http://[::1", "not a valid URL"),
            ("http://plex.lan:99999", "not a valid URL"),
            ("http://plex.lan:32400/?X-Plex-Token=abc", "query"),
        ];
        for (url, piece) in bad {
            let e = check_url(url).unwrap_err();
            assert!(e.contains(piece), "{url}: {e}");
            assert!(!e.contains("abc") && !e.contains("pw"), "{e}");
        }
    }

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2-token");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "hunter2-token");
    }
}
