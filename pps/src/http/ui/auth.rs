//! Who is asking: the login and its limit, sessions, and CSRF, as extractors a handler
//! names in its signature instead of a check it must remember to paste:
//! - [`Viewer`] opens a page: a live session, else the redirect to the login (a
//!   `?lang=` on the URL sets the language first);
//! - [`LoggedIn`] for what is not a page (event streams, downloads): else `401`;
//! - [`Checked`] for every state-changing form: the session is checked before the body
//!   is read, then the form's CSRF token (or the `X-CSRF-Token` header) is compared in
//!   constant time.
//!
//! Cookies go through a cookie jar (axum-extra's); the login limit is governor's keyed
//! rate limiter on a store that forgets a client once it logs in.

use super::{Lang, T, UiState, lang, page, t};
use axum::extract::{Form, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, extract::Query};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use governor::nanos::Nanos;
use governor::state::StateStore;
use pps_core::{Error, ErrorKind, Result, Secret};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
// tokio's clock: the service's, and one a test can pause and advance across a
// session's lifetime or a login window.
use tokio::time::Instant;

/// Login attempts a client may make at once; one more comes back every
/// `LOGIN_WINDOW / LOGIN_ATTEMPTS`. A right password gives them all back.
pub const LOGIN_ATTEMPTS: u32 = 5;
/// The time in which [`LOGIN_ATTEMPTS`] attempts come back.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(300);
/// An idle session ends after this.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// The longest a session lives, however active it is.
pub const SESSION_MAX: Duration = Duration::from_secs(7 * 86_400);

pub(super) const COOKIE: &str = "pps_session";
const LANG_COOKIE: &str = "pps_lang";

#[derive(Debug, Clone)]
pub(super) struct Session {
    pub(super) csrf: String,
    pub(super) seen: Instant,
    /// When it began: a session ends [`SESSION_MAX`] after its login, however active.
    began: Instant,
    /// The password hash it was opened under (a digest of it): a changed password, or
    /// the UI turned off and on with another, ends every session opened before.
    key: u64,
}

/// The digest of a password hash that sessions are bound to.
fn hash_key(hash: &Secret) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    hash.expose().hash(&mut h);
    h.finish()
}

/// The UI's sessions and login limit: kept across config reloads (in the HTTP wing's
/// [`Kept`](crate::http::Kept)), so applying an edit logs nobody out.
pub(crate) struct Sessions {
    pub(super) live: Mutex<HashMap<String, Session>>,
    limit: LoginLimit,
    /// Scans and re-indexes started from the UI, by watch label (they run on past a
    /// reload).
    pub(super) jobs:
        Mutex<std::collections::BTreeMap<String, (super::manage::Job, super::manage::JobState)>>,
    /// Event streams open now, held under [`MAX_STREAMS`](super::MAX_STREAMS).
    pub(super) streams: std::sync::atomic::AtomicUsize,
    /// Password checks running at once: argon2 takes ~19 MiB each by design.
    hashing: tokio::sync::Semaphore,
    /// The digest of the password hash of the config in force, set by each config's
    /// UI: a live view opened before a new hash ends at its next tick.
    key: std::sync::atomic::AtomicU64,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            live: Mutex::default(),
            limit: LoginLimit::new(),
            jobs: Mutex::default(),
            streams: std::sync::atomic::AtomicUsize::new(0),
            hashing: tokio::sync::Semaphore::new(2),
            key: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Counts only: ids and CSRF tokens are secrets.
        let n = self.live.lock().map_or(0, |m| m.len());
        f.debug_struct("Sessions")
            .field("live", &n)
            .finish_non_exhaustive()
    }
}

/// governor's state for each client, in a map this module can also forget a client in
/// (governor's own stores cannot): a right password gives the client's attempts back,
/// so an owner who mistyped is never locked out by their own earlier typos.
#[derive(Clone, Default)]
struct Clients(Arc<Mutex<HashMap<IpAddr, Nanos>>>);

impl StateStore for Clients {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> std::result::Result<T, E>
    where
        F: Fn(Option<Nanos>) -> std::result::Result<(T, Nanos), E>,
    {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (out, next) = f(map.get(key).copied())?;
        map.insert(*key, next);
        Ok(out)
    }
}

/// Lets governor drop the clients whose attempts have all come back, so addresses
/// that tried once (or a guesser walking through IPv6 /64s) are not kept for ever.
impl governor::state::keyed::ShrinkableKeyedStateStore<IpAddr> for Clients {
    fn retain_recent(&self, drop_below: Nanos) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, tat| *tat > drop_below);
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Clients remembered before the ones whose attempts have all come back are dropped.
const CLIENTS_KEPT: usize = 1024;

/// The login limit: [`LOGIN_ATTEMPTS`] at once per client, one more back every
/// `LOGIN_WINDOW / LOGIN_ATTEMPTS` (governor's GCRA: no burst at a window's edge), and
/// one log line per refused client per [`LOGIN_WINDOW`] with a count after it, so
/// thousands of refusals never push the rest out of the log page.
struct LoginLimit {
    limiter: governor::RateLimiter<IpAddr, Clients, governor::clock::DefaultClock>,
    clients: Clients,
    /// When each refused client was last logged, and the refusals since.
    warned: Mutex<HashMap<IpAddr, (Instant, u64)>>,
}

impl LoginLimit {
    fn new() -> Self {
        let quota = governor::Quota::with_period(LOGIN_WINDOW / LOGIN_ATTEMPTS)
            .expect("a non-zero period")
            .allow_burst(std::num::NonZeroU32::new(LOGIN_ATTEMPTS).expect("non-zero"));
        let clients = Clients::default();
        LoginLimit {
            limiter: governor::RateLimiter::new(
                quota,
                clients.clone(),
                governor::clock::DefaultClock::default(),
            ),
            clients,
            warned: Mutex::default(),
        }
    }

    /// Takes one attempt for `ip`; false when it has none left. Taken before the
    /// password is checked, so guesses sent all at once are held to the limit too.
    fn take(&self, ip: IpAddr) -> bool {
        if self.limiter.len() > CLIENTS_KEPT {
            self.limiter.retain_recent();
        }
        if self.limiter.check_key(&ip).is_ok() {
            return true;
        }
        let mut w = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
        // A window that ended says how many refusals it did not log one by one.
        w.retain(|ip, (at, n)| {
            let open = at.elapsed() < LOGIN_WINDOW;
            if !open && *n > 1 {
                tracing::warn!(client = %ip, refused = *n - 1, "web UI: further logins refused for too many attempts (counted, not logged one by one)");
            }
            open
        });
        match w.get_mut(&ip) {
            Some((_, n)) => {
                *n += 1;
                tracing::debug!(client = %ip, refused = *n, "web UI: login refused, too many attempts");
            }
            None => {
                w.insert(ip, (Instant::now(), 1));
                tracing::warn!(client = %ip, "web UI: too many login attempts; refusing this client's logins for a while (further refusals are counted, not logged)");
            }
        }
        false
    }

    /// Gives `ip` all its attempts back (it logged in).
    fn forget(&self, ip: IpAddr) {
        self.clients
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&ip);
    }
}

/// The key of a client for the login limit: the peer's address; behind a proxy listed
/// in `ui.trusted_proxies`, the last address of `X-Forwarded-For`, which that proxy
/// itself appended. No other peer's header is believed: a local process (or every
/// client behind rootless podman's port forwarder, which all arrive from 127.0.0.1)
/// could otherwise guess without limit by changing it. An IPv4 client reached over an
/// IPv6 socket (`::ffff:a.b.c.d`) counts as its IPv4 address; an IPv6 client by its
/// /64, since one host holds many addresses of its network.
fn client_key(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let mut ip = canonical(peer.ip());
    if trusted.contains(&ip)
        && let Some(fwd) = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        ip = canonical(fwd);
    }
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn random_hex() -> Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)
        .map_err(|e| Error::new(ErrorKind::Unexpected, format!("no random source: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Session {
    /// Whether it is still good under the password hash digest `key`: not idle for
    /// [`SESSION_TTL`], not older than [`SESSION_MAX`], opened under that hash.
    pub(super) fn alive(&self, key: u64) -> bool {
        self.seen.elapsed() < SESSION_TTL && self.began.elapsed() < SESSION_MAX && self.key == key
    }
}

impl Sessions {
    /// The password hash in force is `hash` (a new config's UI).
    pub(super) fn bind_to(&self, hash: &Secret) {
        self.key
            .store(hash_key(hash), std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether session `id` is still good under the password hash in force (a live
    /// view asks at every tick, so it ends with its session however the session ends,
    /// a new hash applied by a reload included).
    pub(super) fn alive(&self, id: &str) -> bool {
        let key = self.key.load(std::sync::atomic::Ordering::Relaxed);
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .is_some_and(|s| s.alive(key))
    }

    /// Ends every session (the UI was turned off).
    pub(crate) fn end_all(&self) {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl UiState {
    /// The digest of the password hash in force, which sessions are bound to.
    pub(super) fn session_key(&self) -> u64 {
        hash_key(&self.hash)
    }

    /// The session of a request's cookie, refreshed; `None` when there is none, it
    /// expired, or it was opened under another password hash.
    pub(super) fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let jar = CookieJar::from_headers(headers);
        let id = jar.get(COOKIE)?.value().to_owned();
        let mut sessions = self
            .sessions
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = self.session_key();
        sessions.retain(|_, s| s.alive(key));
        let s = sessions.get_mut(&id)?;
        s.seen = Instant::now();
        Some((id, s.clone()))
    }

    /// A cookie of this UI: scoped to its base path, never sent by another site's page.
    fn cookie(&self, name: &'static str, value: String) -> Cookie<'static> {
        Cookie::build((name, value))
            .path(self.base.clone())
            .same_site(SameSite::Strict)
            .build()
    }
}

/// The language a request sets with `?lang=`, if any.
fn query_lang(parts: &Parts) -> Option<Lang> {
    let Query(q) = Query::<HashMap<String, String>>::try_from_uri(&parts.uri).ok()?;
    Some(if q.get("lang")? == "zh" {
        Lang::Zh
    } else {
        Lang::En
    })
}

/// Sets the language cookie and goes to `to`.
pub(super) fn switch_to(state: &UiState, l: Lang, to: &str) -> Response {
    let value = if l == Lang::Zh { "zh" } else { "en" };
    let c = {
        let mut c = state.cookie(LANG_COOKIE, value.to_owned());
        c.set_max_age(cookie::time::Duration::days(365));
        c
    };
    (CookieJar::new().add(c), Redirect::to(to)).into_response()
}

/// The language the reader chose (the cookie), if they chose one.
pub(super) fn chosen_lang(headers: &HeaderMap) -> Option<Lang> {
    let jar = CookieJar::from_headers(headers);
    let l = jar.get(LANG_COOKIE)?;
    Some(if l.value() == "zh" {
        Lang::Zh
    } else {
        Lang::En
    })
}

pub(super) fn to_login(state: &UiState) -> Response {
    Redirect::to(&state.path("login")).into_response()
}

/// The viewer of a page: a live session and the reader's language. Without a session
/// the request is sent to the login; a `?lang=` sets the language and comes back to
/// the same page (its other parameters kept).
pub(crate) struct Viewer {
    pub(super) session: Session,
    pub(super) lang: Lang,
}

impl FromRequestParts<UiState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &UiState,
    ) -> std::result::Result<Self, Response> {
        if let Some(l) = query_lang(parts) {
            let kept: Vec<String> = parts
                .uri
                .query()
                .unwrap_or("")
                .split('&')
                .filter(|kv| !kv.is_empty() && !kv.starts_with("lang="))
                .map(str::to_owned)
                .collect();
            let path = parts.uri.path();
            let to = if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", kept.join("&"))
            };
            return Err(switch_to(state, l, &to));
        }
        match state.session(&parts.headers) {
            Some((_, session)) => Ok(Viewer {
                session,
                lang: lang(&parts.headers),
            }),
            None => Err(to_login(state)),
        }
    }
}

/// A request of a logged-in client that is not a page (an event stream, a download):
/// `401` without a live session.
pub(crate) struct LoggedIn {
    pub(super) id: String,
    pub(super) session: Session,
    pub(super) lang: Lang,
}

impl FromRequestParts<UiState> for LoggedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &UiState,
    ) -> std::result::Result<Self, Response> {
        match state.session(&parts.headers) {
            Some((id, session)) => Ok(LoggedIn {
                id,
                session,
                lang: lang(&parts.headers),
            }),
            None => Err((StatusCode::UNAUTHORIZED, "log in first").into_response()),
        }
    }
}

/// A form that carries the session's CSRF token.
pub(crate) trait CsrfField {
    /// The `csrf` field as sent (empty when missing).
    fn csrf(&self) -> &str;
}

/// [`CsrfField`] for forms whose token is their `csrf` field (expanded where the
/// forms are, so their fields stay private).
macro_rules! csrf_field {
    ($($form:ty),* $(,)?) => {
        $(impl $crate::http::ui::CsrfField for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}
pub(super) use csrf_field;

/// A state-changing form from a logged-in client whose CSRF token matches: the session
/// is checked before the body is read (a stranger's body never is), then the token from
/// `X-CSRF-Token` or the form's `csrf` field, in constant time.
pub(crate) struct Checked<F> {
    pub(super) id: String,
    pub(super) session: Session,
    pub(super) form: F,
}

impl<F> FromRequest<UiState> for Checked<F>
where
    F: serde::de::DeserializeOwned + CsrfField + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &UiState) -> std::result::Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let LoggedIn {
            id, session, lang, ..
        } = LoggedIn::from_request_parts(&mut parts, state).await?;
        let header = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Form(form) = Form::<F>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let presented = header.as_deref().unwrap_or(form.csrf());
        if presented.is_empty() || !crate::http::same(presented.as_bytes(), session.csrf.as_bytes())
        {
            tracing::warn!("web UI: a state-changing request without its CSRF token was refused");
            let body = maud::html! {
                h1 { (t(lang, T::Refused)) }
                p.error role="alert" { (t(lang, T::CsrfStale)) }
                p { a href=(state.base) { (t(lang, T::BackHome)) } }
            };
            let mut r = page(state, lang, t(lang, T::Refused), Some(&session.csrf), body);
            *r.status_mut() = StatusCode::FORBIDDEN;
            return Err(r);
        }
        Ok(Checked { id, session, form })
    }
}

pub(super) async fn login_page(
    State(state): State<UiState>,
    headers: HeaderMap,
    parts: axum::http::Uri,
) -> Response {
    if let Ok(Query(q)) = Query::<HashMap<String, String>>::try_from_uri(&parts)
        && let Some(l) = q.get("lang")
    {
        let l = if l == "zh" { Lang::Zh } else { Lang::En };
        return switch_to(&state, l, &state.path("login"));
    }
    login_form(&state, lang(&headers), None, StatusCode::OK)
}

fn login_form(state: &UiState, lang: Lang, error: Option<&str>, status: StatusCode) -> Response {
    let body = maud::html! {
        h1 { (t(lang, T::Login)) }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form.login method="post" action=(state.path("login")) {
            label {
                (t(lang, T::Password)) " "
                input type="password" name="password" autocomplete="current-password" required autofocus;
            }
            button type="submit" { (t(lang, T::Login)) }
        }
    };
    let mut r = page(state, lang, t(lang, T::Login), None, body);
    *r.status_mut() = status;
    r
}

#[derive(serde::Deserialize)]
pub(super) struct LoginForm {
    password: String,
}

pub(super) async fn login(
    State(state): State<UiState>,
    Extension(super::Peer(peer)): Extension<super::Peer>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let lang = lang(&headers);
    let ip = client_key(peer, &headers, &state.app.config.ui.trusted_proxies);
    if !state.sessions.limit.take(ip) {
        return login_form(
            &state,
            lang,
            Some(t(lang, T::Slow)),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let hash = state.hash.clone();
    // argon2 takes tens of milliseconds of CPU and ~19 MiB by design: off the async
    // threads, and at most two at once.
    let ok = match state.sessions.hashing.acquire().await {
        Ok(_permit) => tokio::task::spawn_blocking(move || {
            super::verify_password(&form.password, hash.expose())
        })
        .await
        .unwrap_or(false),
        Err(_) => false,
    };
    if !ok {
        tracing::warn!(client = %ip, "web UI: wrong password");
        return login_form(
            &state,
            lang,
            Some(t(lang, T::Wrong)),
            StatusCode::UNAUTHORIZED,
        );
    }
    state.sessions.limit.forget(ip);
    let (Ok(id), Ok(csrf)) = (random_hex(), random_hex()) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no random source").into_response();
    };
    state
        .sessions
        .live
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(
            id.clone(),
            Session {
                csrf,
                seen: Instant::now(),
                began: Instant::now(),
                key: hash_key(&state.hash),
            },
        );
    tracing::info!(client = %ip, "web UI: logged in");
    let mut c = state.cookie(COOKIE, id);
    c.set_http_only(true);
    c.set_max_age(cookie::time::Duration::seconds(
        i64::try_from(SESSION_TTL.as_secs()).unwrap_or(i64::MAX),
    ));
    // Behind a TLS proxy (it says so in X-Forwarded-Proto) the cookie is never sent
    // over plain HTTP.
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    c.set_secure(secure);
    (CookieJar::new().add(c), Redirect::to(&state.base)).into_response()
}

/// A form whose only field is the CSRF token (logout).
#[derive(serde::Deserialize)]
pub(super) struct OnlyCsrf {
    #[serde(default)]
    csrf: String,
}

csrf_field!(OnlyCsrf);

pub(super) async fn logout(State(state): State<UiState>, c: Checked<OnlyCsrf>) -> Response {
    state
        .sessions
        .live
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&c.id);
    let gone = state.cookie(COOKIE, String::new());
    (CookieJar::new().remove(gone), to_login(&state)).into_response()
}

#[cfg(test)]
mod tests {
    use super::{Clients, LOGIN_ATTEMPTS, LoginLimit};
    use governor::nanos::Nanos;
    use governor::state::keyed::ShrinkableKeyedStateStore as _;

    #[test]
    fn the_login_limit_counts_attempts_and_a_login_gives_them_back() {
        let limit = LoginLimit::new();
        let ip = "192.0.2.7".parse().unwrap();
        for _ in 0..LOGIN_ATTEMPTS {
            assert!(limit.take(ip));
        }
        assert!(!limit.take(ip), "the sixth attempt waits");
        assert!(
            limit.take("192.0.2.8".parse().unwrap()),
            "another client is not held"
        );
        limit.forget(ip);
        assert!(limit.take(ip), "a right password gave the attempts back");
    }

    #[test]
    fn clients_whose_attempts_came_back_are_dropped() {
        let clients = Clients::default();
        {
            let mut map = clients.0.lock().unwrap();
            map.insert("192.0.2.1".parse().unwrap(), Nanos::from(10));
            map.insert("192.0.2.2".parse().unwrap(), Nanos::from(1_000));
        }
        clients.retain_recent(Nanos::from(500));
        assert_eq!(clients.len(), 1);
        assert!(!clients.is_empty());
    }
}
