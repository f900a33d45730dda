//! The API as one service: single status queries and OCSP `GET`s in their
//! plain form go straight to their handlers; every other request goes
//! through the router.
//!
//! Why: validators' single status queries and OCSP `GET`s are most of the
//! traffic, and the router's part of each (matching the path, percent-decoding
//! the parameters into shared strings, the matched-path and parameter
//! extensions, the boxed route service) was about a fifth of a status query's
//! instructions (docs/BENCHMARKS.md). Only the forms validators send are
//! taken: `GET /v1/status/{issuer}/{serial}` with two non-empty segments of
//! unreserved characters, and `GET /ocsp/{request}` with the request in
//! base64 that needs no percent-decoding, so the path holds the parameters as
//! they are. Anything else, a percent-encoded serial or base64, a trailing
//! slash, takes the router. Both ways end in the same handlers
//! ([`routes::status::single`], [`routes::ocsp::answer_get`]), behind the same
//! authentication and the same request layer (id, span, deadline, metrics).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;
use tower::Service;

use crate::AppState;
use crate::auth::{Authorized, Validators};
use crate::request_layer::{Answering, EveryRequest, RequestLayer};
use crate::routes;

/// The API: the router, and the shortcuts for single status queries and OCSP `GET`s.
#[derive(Clone)]
pub struct Api {
    router: Router,
    status: EveryRequest<Shortcut>,
    ocsp: EveryRequest<Shortcut>,
}

impl Api {
    /// The router, with single status queries and OCSP `GET`s served beside it.
    pub fn with_shortcuts(router: Router, state: AppState, every_request: &RequestLayer) -> Self {
        let shortcut = |route: &str, kind| every_request.for_route(route, Shortcut { state: state.clone(), kind });
        Self {
            router,
            status: shortcut(routes::status::SINGLE, Kind::Status),
            ocsp: shortcut(routes::ocsp::GET, Kind::OcspGet),
        }
    }
}

impl Service<Request> for Api {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Both ways are always ready: the router, and a service that only builds a future.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Answer {
        if request.method() == Method::GET {
            let path = request.uri().path();
            if plain_status_query(path).is_some() {
                return Answer::Shortcut { future: self.status.call(request) };
            }
            if plain_ocsp_get(path).is_some() {
                return Answer::Shortcut { future: self.ocsp.call(request) };
            }
        }
        Answer::Routed { future: self.router.call(request) }
    }
}

/// The issuer and serial of `/v1/status/{issuer}/{serial}` written plainly:
/// both segments non-empty and made only of unreserved characters (RFC 3986),
/// so that percent-decoding would leave them as they are.
fn plain_status_query(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v1/status/")?;
    let slash = rest.bytes().position(|b| b == b'/')?;
    let (issuer, serial) = (&rest[..slash], &rest[slash + 1..]);
    let plain = |segment: &str| !segment.is_empty() && segment.bytes().all(|b| UNRESERVED[usize::from(b)]);
    (plain(issuer) && plain(serial)).then_some((issuer, serial))
}

/// The base64 request of `/ocsp/{request}` written plainly: non-empty and
/// made only of the characters of either base64 alphabet and its padding,
/// none of which percent-decoding would change. (`+` in a path is a plus.)
fn plain_ocsp_get(path: &str) -> Option<&str> {
    let request = path.strip_prefix("/ocsp/")?;
    let plain = !request.is_empty() && request.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=-_".contains(&b));
    plain.then_some(request)
}

/// RFC 3986's unreserved characters: letters, digits, `-`, `.`, `_` and `~`.
const UNRESERVED: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        byte += 1;
    }
    table
};

type Boxed = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// Which shortcut a [`Shortcut`] serves.
#[derive(Clone, Copy)]
enum Kind {
    /// Single status queries, called only with paths [`plain_status_query`] reads.
    Status,
    /// OCSP `GET`s, called only with paths [`plain_ocsp_get`] reads.
    OcspGet,
}

/// A route served without the router.
#[derive(Clone)]
pub struct Shortcut {
    state: AppState,
    kind: Kind,
}

impl Service<Request> for Shortcut {
    type Response = Response;
    type Error = Infallible;
    type Future = Boxed;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Boxed {
        let (state, kind) = (self.state.clone(), self.kind);
        Box::pin(async move {
            let (mut parts, _body) = request.into_parts();
            // Authentication first, as the routed handlers' extractors do.
            let caller = Authorized::<Validators>::from_request_parts(&mut parts, &state).await;
            let path = parts.uri.path();
            Ok(match kind {
                Kind::Status => {
                    let answer = async {
                        caller?;
                        let (issuer, serial) = plain_status_query(path).ok_or_else(|| {
                            anyhow::anyhow!("a status query's path changed on the way to its handler")
                        })?;
                        routes::status::single(&state, issuer, serial).await
                    };
                    answer.await.into_response()
                }
                Kind::OcspGet => {
                    let encoded = plain_ocsp_get(path).unwrap_or_default();
                    routes::ocsp::answer_get(&state, &caller, &parts.headers, encoded).await
                }
            })
        })
    }
}

pin_project_lite::pin_project! {
    /// The answer in the making, whichever way the request went.
    #[project = AnswerProjection]
    pub enum Answer {
        Shortcut { #[pin] future: Answering<Boxed> },
        Routed { #[pin] future: RouteFuture<Infallible> },
    }
}

impl Future for Answer {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AnswerProjection::Shortcut { future } => future.poll(cx),
            AnswerProjection::Routed { future } => future.poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_plain_form_of_a_single_status_query_is_taken() {
        assert_eq!(plain_status_query("/v1/status/jpki-auth/3f9a0c11"), Some(("jpki-auth", "3f9a0c11")));
        assert_eq!(plain_status_query("/v1/status/a.b_c~d/EF"), Some(("a.b_c~d", "EF")));
        for routed in [
            "/v1/status",
            "/v1/status/",
            "/v1/status/jpki-auth",
            "/v1/status/jpki-auth/",
            "/v1/status//3f9a",
            "/v1/status/jpki-auth/3f9a/",
            "/v1/status/jpki-auth/3f9a/more",
            "/v1/status/jpki%2Dauth/3f9a",
            "/v1/status/jpki-auth/%FF",
            "/v1/status/jpki-auth/3f 9a",
            "/v1/statusx/jpki-auth/3f9a",
            "/v1/suspensions/jpki-auth/3f9a",
        ] {
            assert_eq!(plain_status_query(routed), None, "{routed} goes through the router");
        }
    }

    #[test]
    fn only_ocsp_gets_that_need_no_percent_decoding_are_taken() {
        assert_eq!(plain_ocsp_get("/ocsp/MEIwQDA+MDwwOjAJBgUrDgMCGgUA"), Some("MEIwQDA+MDwwOjAJBgUrDgMCGgUA"));
        assert_eq!(plain_ocsp_get("/ocsp/ME_w-A/b=="), Some("ME_w-A/b=="));
        for routed in ["/ocsp", "/ocsp/", "/ocsp/MEIw%2BMDw", "/ocsp/ME w", "/ocspx/MEIw", "/v1/ocsp/MEIw"] {
            assert_eq!(plain_ocsp_get(routed), None, "{routed} goes through the router");
        }
    }
}
