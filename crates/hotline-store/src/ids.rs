//! The registry's row ids as types of their own, so a certificate's id is
//! never passed where a card's is wanted. They never leave the store: the
//! API names holders by fingerprint and suspensions by their id or reference.

/// A row of `holders`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct HolderId(pub i64);

/// A row of `cards`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CardId(pub i64);

/// A row of `certificates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct CertificateId(pub i64);
