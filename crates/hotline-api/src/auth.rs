//! Authentication and role checks, as extractors: a handler that takes
//! `Authorized<Operators>` cannot run for anyone else, and the check happens
//! before the body is read. Machines send a bearer token; the console sends
//! its session cookie (`routes::console`), and with it, on anything but a
//! read, the console's header, which a cross-site form cannot send.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use hotline_core::Role;
use hotline_store::TokenRecord;

use crate::AppState;
use crate::problem::{Dependency, Problem};
use crate::routes::console::{CONSOLE_HEADER, SESSION_COOKIE};

/// A set of roles allowed to call a route.
pub trait Roles: Send + Sync + 'static {
    const ALLOWED: &'static [Role];
}

macro_rules! roles {
    ($($(#[$doc:meta])* $name:ident => [$($role:ident),+];)+) => {$(
        $(#[$doc])*
        pub struct $name;
        impl Roles for $name {
            const ALLOWED: &'static [Role] = &[$(Role::$role),+];
        }
    )+};
}

roles! {
    /// Call-centre operators and their supervisors: they suspend.
    Operators => [Operator, Supervisor];
    /// Municipal clerks: they release.
    Clerks => [Clerk];
    /// Anyone who may read a suspension.
    SuspensionReaders => [Operator, Supervisor, Clerk];
    /// Certificate validators.
    Validators => [Validator];
    /// Every role.
    AnyRole => [Operator, Supervisor, Clerk, Validator];
}

/// The authenticated caller, known to hold one of `R`'s roles.
pub struct Authorized<R: Roles> {
    pub token: Arc<TokenRecord>,
    _roles: PhantomData<R>,
}

impl<R: Roles> FromRequestParts<AppState> for Authorized<R> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Problem::refuse_repeated(&parts.headers, AUTHORIZATION)?;
        let token = match bearer(parts) {
            Some(secret) => state
                .tokens
                .find(&state.store, secret)
                .await
                .map_err(|e| auth_outage(e.0))?
                .ok_or_else(Problem::unauthorized)?,
            None => Arc::new(session_token(parts, state).await?),
        };
        if !R::ALLOWED.contains(&token.role) {
            return Err(Problem::forbidden());
        }
        Ok(Self { token, _roles: PhantomData })
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn auth_unavailable() -> Problem {
    Problem::outage(Dependency::Database, "auth_unavailable", "Tokens cannot be checked right now")
        .detail("Retry shortly.")
}

/// A token or session store that could not be asked: logged, and `503 auth_unavailable`.
pub(crate) fn auth_outage(e: hotline_store::Error) -> Problem {
    if e.outage().is_none() {
        return Problem::from(e);
    }
    tracing::warn!(error = e.report(), "token or session look-up failed");
    auth_unavailable()
}

/// The token behind the request's console session, its idle clock moved on.
async fn session_token(parts: &Parts, state: &AppState) -> Result<TokenRecord, Problem> {
    session_secret(&parts.headers).ok_or_else(Problem::unauthorized)?;
    if !parts.method.is_safe() && !from_console(&parts.headers) {
        return Err(console_header_required());
    }
    live_session(&parts.headers, state).await?.ok_or_else(session_ended)
}

/// The token behind the console session the request's cookie names, if that
/// session is live; using it moves its idle clock on.
pub(crate) async fn live_session(headers: &HeaderMap, state: &AppState) -> Result<Option<TokenRecord>, Problem> {
    let Some(secret) = session_secret(headers) else { return Ok(None) };
    state.store.use_session(secret, state.clock.now(), state.console.idle_chrono()).await.map_err(auth_outage)
}

/// The console session's secret from the `Cookie` header, if there is one.
pub(crate) fn session_secret(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
        .filter(|s| !s.is_empty())
}

/// Whether the request carries the console's header.
pub(crate) fn from_console(headers: &HeaderMap) -> bool {
    headers.get(CONSOLE_HEADER).is_some_and(|v| v.as_bytes() == b"1")
}

pub(crate) fn console_header_required() -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "console_header_required", "This request needs the console's header")
        .detail("A request made with the console's session cookie must send X-Hotline-Console: 1.")
}

fn session_ended() -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "session_ended", "The console session has ended")
        .detail("It was signed out, left idle too long, or its token was revoked: sign in again.")
}
