//! Route handlers, one module per resource.

pub mod console;
pub mod health;
pub mod holders;
pub mod ocsp;
pub mod rules;
pub mod status;
pub mod suspensions;
