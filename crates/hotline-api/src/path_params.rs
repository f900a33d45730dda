//! A route's path parameters, refused as problem+json when they cannot be
//! read. axum's own `Path` answers a parameter that is not UTF-8 once
//! percent-decoded (`/v1/status/jpki-auth/%FF`) in plain text, outside the
//! API's error contract.

use axum::extract::FromRequestParts;
use axum::extract::Path;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::{FieldError, Problem};

/// The path parameters, deserialized as axum's `Path` does.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let rejection = match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(params)) => return Ok(PathParams(params)),
            Err(rejection) => rejection,
        };
        if let PathRejection::FailedToDeserializePathParams(e) = &rejection
            && let ErrorKind::InvalidUtf8InPathParam { key } = e.kind()
        {
            return Err(Problem::validation(vec![FieldError::new(
                key.as_str(),
                "is not UTF-8 text once percent-decoded",
            )]));
        }
        // Every route's parameters are strings it names: anything else is a routing bug.
        Err(anyhow::anyhow!("path parameters do not fit the route: {}", rejection.body_text()).into())
    }
}
