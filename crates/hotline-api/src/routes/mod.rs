//! Route handlers, one module per resource.

pub mod health;
pub mod ocsp;
pub mod rules;
pub mod status;
pub mod suspensions;
