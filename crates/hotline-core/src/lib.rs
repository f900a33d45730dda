//! The suspension hotline's domain: types that can only hold valid values, and
//! the reception-rule engine that decides, from an instant and an item, whether
//! a report is accepted now.
//!
//! This crate is pure: no I/O, no async, no clock. Time is always an argument,
//! so the caller (the API, with the server's clock) decides what "now" is.

pub mod audit;
pub mod individual_number;
pub mod names;
pub mod reference;
pub mod rules;
pub mod status;
pub mod vocabulary;

pub use individual_number::{HolderFingerprint, IndividualNumber, PiiKey};
pub use names::{CallId, DeviceId, IssuerId, Serial};
pub use reference::Reference;
pub use rules::{Decision, RuleBook, RulesFileError};
pub use status::StatusRecord;
pub use vocabulary::{
    CaAction, CaSync, CardStatus, Cause, CertificateKind, CertificateStatus, IdentityDocument, Item, Language, Medium,
    Mode, OutboxState, RevocationReason, Role, SuspensionState,
};
