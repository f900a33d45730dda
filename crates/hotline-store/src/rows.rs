//! Column helpers: instants as fixed-width RFC 3339 UTC text, and closed
//! vocabularies read back through their parsers so a bad row is an error, not a guess.

use std::str::FromStr;

use anyhow::Context;

use crate::error::unexpected;
use chrono::{DateTime, SecondsFormat, Utc};
use hotline_core::{IssuerId, Serial, StatusRecord};
use sqlx::Row;
use sqlx::any::AnyRow;

/// An instant as stored: `2026-11-22T05:20:41.123456Z` (text order is time order).
pub fn format_instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn parse_instant(s: &str) -> crate::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| unexpected!("stored instant {s:?} is not RFC 3339: {e}"))
}

pub(crate) fn text(row: &AnyRow, col: &str) -> crate::Result<String> {
    Ok(row.try_get::<String, _>(col).with_context(|| format!("column {col}"))?)
}

pub(crate) fn opt_text(row: &AnyRow, col: &str) -> crate::Result<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(col).with_context(|| format!("column {col}"))?)
}

pub(crate) fn instant(row: &AnyRow, col: &str) -> crate::Result<DateTime<Utc>> {
    parse_instant(&text(row, col)?)
}

pub(crate) fn opt_instant(row: &AnyRow, col: &str) -> crate::Result<Option<DateTime<Utc>>> {
    opt_text(row, col)?.as_deref().map(parse_instant).transpose()
}

pub(crate) fn word<W: FromStr>(row: &AnyRow, col: &str) -> crate::Result<W>
where
    W::Err: std::fmt::Display,
{
    let s = text(row, col)?;
    s.parse::<W>().map_err(|e| unexpected!("column {col}: {e}"))
}

pub(crate) fn opt_word<W: FromStr>(row: &AnyRow, col: &str) -> crate::Result<Option<W>>
where
    W::Err: std::fmt::Display,
{
    opt_text(row, col)?.map(|s| s.parse::<W>().map_err(|e| unexpected!("column {col}: {e}"))).transpose()
}

/// A certificate's `status`, `reason` and `since` columns as one record.
pub(crate) fn status_record(row: &AnyRow) -> crate::Result<StatusRecord> {
    Ok(StatusRecord { status: word(row, "status")?, reason: opt_word(row, "reason")?, since: instant(row, "since")? })
}

pub(crate) fn issuer(row: &AnyRow, col: &str) -> crate::Result<IssuerId> {
    let s = text(row, col)?;
    IssuerId::parse(&s).map_err(|e| unexpected!("column {col}: {e}"))
}

pub(crate) fn serial(row: &AnyRow, col: &str) -> crate::Result<Serial> {
    let s = text(row, col)?;
    Serial::parse(&s).map_err(|e| unexpected!("column {col}: {e}"))
}

/// `$1, $2, …, $n`: the placeholders of an `IN (…)` list.
pub(crate) fn value_list(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `($1, $2), ($3, $4), …`: `n` pairs, for `(issuer, serial) IN (VALUES …)`.
pub(crate) fn value_pairs(n: usize) -> String {
    (0..n).map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2)).collect::<Vec<_>>().join(", ")
}
