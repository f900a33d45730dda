//! Bearer-token authentication and role checks, as extractors: a handler that
//! takes `Authorized<Operators>` cannot run for anyone else, and the check
//! happens before the body is read.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use hotline_core::Role;
use hotline_store::TokenRecord;

use crate::AppState;
use crate::problem::{Dependency, Problem};

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
        let secret = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(Problem::unauthorized)?;
        let token = state
            .tokens
            .find(&state.store, secret)
            .await
            .map_err(|e| {
                tracing::warn!(error = format!("{:#}", e.0), "token look-up failed");
                Problem::outage(Dependency::Database, "auth_unavailable", "Tokens cannot be checked right now")
                    .detail("Retry shortly.")
            })?
            .ok_or_else(Problem::unauthorized)?;
        if !R::ALLOWED.contains(&token.role) {
            return Err(Problem::forbidden());
        }
        Ok(Self { token, _roles: PhantomData })
    }
}
