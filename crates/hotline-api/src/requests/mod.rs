//! Request bodies. Each is described once for the OpenAPI document (a schema
//! struct, its closed vocabularies the domain's own types) and read once by a
//! parser that collects every field error with its path. The two sit side by
//! side, and `contract` holds them together: it fails when a schema's
//! properties, required fields or words differ from what its parser accepts.

mod identify;
mod release;
mod status_query;
mod suspension;

#[cfg(test)]
mod contract;

pub use identify::{IdentifyRequest, parse_identify};
pub use release::{ReleaseFields, ReleaseRequest, parse_release};
pub use status_query::{BatchRefused, BatchStatusQuery, MAX_BATCH, StatusQueryItem, parse_batch};
pub use suspension::{HolderIn, SuspensionRequest, parse_report};
