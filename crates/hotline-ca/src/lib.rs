//! The certificate authority's revocation protocol, as spoken between the CA
//! sync worker and the CA (ca-sim in development and tests): the request and
//! answer types, an HTTP client with timeouts that tells a refusal (do not
//! retry) from an outage (retry), and verification of the CA's signed CRLs.

mod client;
mod crl;
mod protocol;

pub use client::{CaClient, SendError};
pub use crl::{CrlEntry, CrlError, TrustedIssuer, VerifiedCrl, canonical_serial, canonical_serial_hex};
pub use protocol::{
    CaProblem, CaStats, EntryState, Faults, ResponderCertificate, ResponderRequest, RevocationAnswer, RevocationRequest,
};
