//! OCSP (RFC 6960, profiled by RFC 5019) for the revocation cache's
//! validators: reading requests, building and signing responses with a
//! delegated responder certificate per issuer, and keeping signed answers
//! for reuse. The only crate that knows OCSP's ASN.1 (through RustCrypto's
//! `x509-ocsp` and `der`) and signs with the responder's key (`ring`).
//!
//! What a certificate's status is, and whether an answer may be given at
//! all, is decided by the caller from the revocation cache and the store;
//! this crate only turns that into DER.

mod http_caching;
mod issuer;
mod request;
mod responder;
mod response;
mod signed_cache;
mod signers;

pub use http_caching::{CachingHeaders, http_date};
pub use issuer::{BadIssuerCertificate, KnownIssuer};
pub use request::{
    Asked, HashAlgorithm, MAX_CERT_IDS, MAX_REQUEST_BYTES, Malformed, Nonce, Query, canonical_serial, parse,
};
pub use responder::{Responder, ResponderError, generate_key};
pub use response::{Known, SignError, Signed, error, read_statuses, sign, to_second};
pub use signed_cache::{CacheKey, Lookup, SignedCache};
pub use signers::{Saturated, Signers};
pub use x509_ocsp::OcspResponseStatus;

/// The contents of the first PEM block in `text` (a certificate or a PKCS#8 key), as DER.
pub fn pem_contents(text: &[u8]) -> Option<Vec<u8>> {
    x509_parser::pem::parse_x509_pem(text).ok().map(|(_, pem)| pem.contents)
}

#[cfg(test)]
mod tests;
