//! The operators' and clerks' console (`/console`): its pages, its string
//! catalogues and the vocabulary it sends words from, all compiled into the
//! binary, and its sessions. A person signs in once with their token; the
//! browser then carries a session cookie (`HttpOnly`, `SameSite=Strict`,
//! `Secure` behind TLS) that the store keeps as a hash, live on every
//! instance until signed out or idle past `console_idle_timeout_s`.
//!
//! Every console answer carries a Content-Security-Policy that allows this
//! origin's own files only (no inline script, nothing third-party, no
//! framing), `nosniff` and `no-referrer`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hotline_core::{Cause, IdentityDocument, Item, Language, Role};
use serde::Serialize;

use crate::AppState;
use crate::answer::JsonAnswer;
use crate::auth::{auth_outage, console_header_required, from_console, live_session, session_secret};
use crate::body::JsonBody;
use crate::fields::{Fields, Reading};
use crate::path_params::PathParams;
use crate::problem::Problem;

/// The cookie that carries a console session's secret.
pub const SESSION_COOKIE: &str = "hotline_session";
/// Sent by the console on every request; required with the cookie on anything but a read.
pub const CONSOLE_HEADER: &str = "x-hotline-console";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// How long a console session lives without use, and whether its cookie is `Secure`.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleSettings {
    pub idle_timeout: std::time::Duration,
    /// Mark the cookie `Secure`: the service is reached over TLS (a terminating proxy in front).
    pub secure_cookie: bool,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self { idle_timeout: std::time::Duration::from_secs(15 * 60), secure_cookie: false }
    }
}

impl ConsoleSettings {
    pub fn idle_chrono(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.idle_timeout).unwrap_or(chrono::Duration::minutes(15))
    }
}

/// The headers every console answer carries.
fn guarded(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    guarded(([(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body).into_response())
}

pub async fn page() -> Response {
    file("text/html; charset=utf-8", include_str!("../console/index.html"))
}

pub async fn script() -> Response {
    file("text/javascript; charset=utf-8", include_str!("../console/console.js"))
}

pub async fn style() -> Response {
    file("text/css; charset=utf-8", include_str!("../console/console.css"))
}

/// One string catalogue per language of the console.
pub async fn catalogue(PathParams(name): PathParams<String>) -> Response {
    match name.as_str() {
        "ja.json" => file("application/json", include_str!("../console/ja.json")),
        "en.json" => file("application/json", include_str!("../console/en.json")),
        _ => guarded(Problem::not_found("not_found", "No such catalogue").into_response()),
    }
}

/// The words the console may send, from the domain's own vocabularies.
#[derive(Serialize)]
struct Vocabulary {
    items: &'static [Item],
    causes: &'static [Cause],
    languages: &'static [Language],
    identity_documents: &'static [IdentityDocument],
}

pub async fn vocabulary() -> Response {
    guarded(
        JsonAnswer(Vocabulary {
            items: Item::ALL,
            causes: Cause::ALL,
            languages: Language::ALL,
            identity_documents: IdentityDocument::ALL,
        })
        .into_response(),
    )
}

/// Who is signed in, as the console shows it.
#[derive(Serialize)]
struct SessionAnswer {
    signed_in: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    idle_timeout_s: u64,
}

impl SessionAnswer {
    fn new(state: &AppState, token: Option<&hotline_store::TokenRecord>) -> Self {
        Self {
            signed_in: token.is_some(),
            name: token.map(|t| t.name.clone()),
            role: token.map(|t| t.role),
            idle_timeout_s: state.console.idle_timeout.as_secs(),
        }
    }
}

/// `GET /console/session`: the person signed in, or `signed_in: false` (a
/// 200 either way, so a page that is not signed in logs no failed request).
pub async fn current(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Problem> {
    let token = live_session(&headers, &state).await?;
    Ok(guarded(JsonAnswer(SessionAnswer::new(&state, token.as_ref())).into_response()))
}

/// `POST /console/session` with `{"token": "…"}`: signs in.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    if !from_console(&headers) {
        return Err(console_header_required());
    }
    let mut reading = Reading::default();
    let secret =
        Fields::of(&body, "", &mut reading).and_then(|mut f| {
            let token = f.required("token", |s: &str| {
                if s.trim().is_empty() { Err("must not be empty") } else { Ok(s.trim().to_owned()) }
            });
            f.refuse_unknown();
            token
        });
    let secret = match secret {
        Some(s) if reading.is_ok() => s,
        _ => return Err(Problem::validation(reading.errors)),
    };
    let token = state.store.find_token(&secret).await.map_err(auth_outage)?.ok_or_else(Problem::unauthorized)?;
    if token.role == Role::Validator {
        return Err(Problem::new(StatusCode::FORBIDDEN, "console_not_for_role", "Validators do not use the console")
            .detail("The console is for operators, supervisors and clerks; validators use the status API and OCSP."));
    }
    let session = state.store.open_session(&token, state.clock.now()).await.map_err(auth_outage)?;
    tracing::info!(token = %token.id, role = %token.role, "console session opened");
    let mut response = JsonAnswer(SessionAnswer::new(&state, Some(&token))).into_response();
    set_cookie(&mut response, &cookie(&state, &session, false));
    Ok(guarded(response))
}

/// `DELETE /console/session`: signs out, on every instance at once.
pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Problem> {
    if !from_console(&headers) {
        return Err(console_header_required());
    }
    if let Some(secret) = session_secret(&headers) {
        state.store.end_session(secret, state.clock.now()).await.map_err(auth_outage)?;
    }
    let mut response = JsonAnswer(SessionAnswer::new(&state, None)).into_response();
    set_cookie(&mut response, &cookie(&state, "", true));
    Ok(guarded(response))
}

fn cookie(state: &AppState, value: &str, expired: bool) -> String {
    let mut cookie = format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict");
    if state.console.secure_cookie {
        cookie.push_str("; Secure");
    }
    if expired {
        cookie.push_str("; Max-Age=0");
    }
    cookie
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
}
