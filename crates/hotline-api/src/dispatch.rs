//! The API as one service: single status queries in their plain form go
//! straight to their handler; every other request goes through the router.
//!
//! Why: validators' single status queries are most of the traffic, and the
//! router's part of each (matching the path, percent-decoding both parameters
//! into four shared strings, the matched-path and parameter extensions, the
//! boxed route service) was about a fifth of its instructions
//! (docs/BENCHMARKS.md). Only the form validators send is taken: `GET`, two
//! non-empty segments of unreserved characters, so the segments are the
//! parameters as they are. Anything else, a percent-encoded serial or a
//! trailing slash, takes the router. Both ways end in the same
//! handler ([`routes::status::single`]), behind the same authentication and
//! the same request layer (id, span, deadline, metrics).

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

/// The API: the router, and the shortcut for single status queries.
#[derive(Clone)]
pub struct Api {
    router: Router,
    status: EveryRequest<StatusQueries>,
}

impl Api {
    /// The router, with single status queries served beside it.
    pub fn with_status_queries(router: Router, state: AppState, every_request: &RequestLayer) -> Self {
        Self { router, status: every_request.for_route(routes::status::SINGLE, StatusQueries { state }) }
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
        if request.method() == Method::GET && plain_status_query(request.uri().path()).is_some() {
            Answer::Shortcut { future: self.status.call(request) }
        } else {
            Answer::Routed { future: self.router.call(request) }
        }
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

/// Single status queries, called only with paths [`plain_status_query`] reads.
#[derive(Clone)]
pub struct StatusQueries {
    state: AppState,
}

impl Service<Request> for StatusQueries {
    type Response = Response;
    type Error = Infallible;
    type Future = Boxed;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Boxed {
        let state = self.state.clone();
        Box::pin(async move {
            let (mut parts, _body) = request.into_parts();
            let answer = async {
                // Authentication first, as the routed handler's extractors do.
                Authorized::<Validators>::from_request_parts(&mut parts, &state).await?;
                let (issuer, serial) = plain_status_query(parts.uri.path())
                    .ok_or_else(|| anyhow::anyhow!("a status query's path changed on the way to its handler"))?;
                routes::status::single(&state, issuer, serial).await
            };
            Ok(answer.await.into_response())
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
}
