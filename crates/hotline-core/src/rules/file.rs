//! Reading a rule file: TOML into validated rule sets, with every error naming
//! the line it is about, so a bad file is refused at start-up with a message
//! an on-call engineer can act on.

use std::ops::Range;
use std::str::FromStr;

use chrono::{DateTime, NaiveTime, Utc};
use serde::Deserialize;
use toml::Spanned;

use super::{RuleSet, Staffing};

/// A refused rule file: the 1-based line and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule file, line {line}: {message}")]
pub struct RulesFileError {
    pub line: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule_set: Vec<Spanned<RawSet>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSet {
    version: Spanned<String>,
    effective_from: Spanned<String>,
    day_starts: Spanned<String>,
    night_starts: Spanned<String>,
    day_items: Vec<Spanned<String>>,
    night_items: Vec<Spanned<String>>,
    #[serde(default)]
    staffed: Vec<Spanned<RawStaffing>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStaffing {
    languages: Vec<Spanned<String>>,
    from: Spanned<String>,
    until: Spanned<String>,
}

struct Lines<'a>(&'a str);

impl Lines<'_> {
    fn line_of(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.0.len());
        self.0.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() + 1
    }

    fn error<T>(&self, span: &Range<usize>, message: impl Into<String>) -> Result<T, RulesFileError> {
        Err(RulesFileError { line: self.line_of(span), message: message.into() })
    }
}

pub(super) fn parse(text: &str) -> Result<Vec<RuleSet>, RulesFileError> {
    let lines = Lines(text);
    let raw: RawFile = toml::from_str(text).map_err(|e| RulesFileError {
        line: e.span().map(|s| lines.line_of(&s)).unwrap_or(1),
        message: e.message().to_owned(),
    })?;
    if raw.rule_set.is_empty() {
        return lines.error(&(0..0), "the file defines no [[rule_set]]");
    }
    let mut sets: Vec<RuleSet> = Vec::with_capacity(raw.rule_set.len());
    for spanned in &raw.rule_set {
        let set = parse_set(&lines, spanned.get_ref())?;
        if let Some(prev) = sets.last() {
            let here = spanned.get_ref().effective_from.span();
            if set.effective_from == prev.effective_from {
                return lines.error(
                    &here,
                    format!(
                        "rule set {:?} overlaps {:?}: both take effect at {}",
                        set.version, prev.version, set.effective_from
                    ),
                );
            }
            if set.effective_from < prev.effective_from {
                return lines.error(
                    &here,
                    format!(
                        "rule sets must be in order of effective_from: {:?} ({}) comes after {:?} ({})",
                        set.version, set.effective_from, prev.version, prev.effective_from
                    ),
                );
            }
        }
        if sets.iter().any(|s| s.version == set.version) {
            return lines.error(&spanned.get_ref().version.span(), format!("version {:?} is used twice", set.version));
        }
        sets.push(set);
    }
    Ok(sets)
}

fn parse_set(lines: &Lines<'_>, raw: &RawSet) -> Result<RuleSet, RulesFileError> {
    let version = raw.version.get_ref().trim();
    if version.is_empty() {
        return lines.error(&raw.version.span(), "version must not be empty");
    }
    let effective_from =
        DateTime::parse_from_rfc3339(raw.effective_from.get_ref()).map(|t| t.with_timezone(&Utc)).or_else(|_| {
            lines.error(&raw.effective_from.span(), format!(
            "effective_from {:?} is not an RFC 3339 instant with an offset, such as \"2023-05-11T00:00:00+09:00\"",
            raw.effective_from.get_ref()
        ))
        })?;
    let day_starts = parse_time(lines, &raw.day_starts)?;
    let night_starts = parse_time(lines, &raw.night_starts)?;
    if day_starts >= night_starts {
        return lines.error(&raw.night_starts.span(), "night_starts must be later in the day than day_starts");
    }
    let staffed = raw.staffed.iter().map(|s| parse_staffing(lines, s.get_ref())).collect::<Result<_, _>>()?;
    Ok(RuleSet {
        version: version.to_owned(),
        effective_from,
        day_starts,
        night_starts,
        day_items: parse_words(lines, &raw.day_items)?,
        night_items: parse_words(lines, &raw.night_items)?,
        staffed,
    })
}

fn parse_staffing(lines: &Lines<'_>, raw: &RawStaffing) -> Result<Staffing, RulesFileError> {
    let from = parse_time(lines, &raw.from)?;
    let until = if raw.until.get_ref() == "24:00" { None } else { Some(parse_time(lines, &raw.until)?) };
    if until.is_some_and(|u| u <= from) {
        return lines.error(&raw.until.span(), "until must be later than from (use \"24:00\" for midnight)");
    }
    Ok(Staffing { languages: parse_words(lines, &raw.languages)?, from, until })
}

fn parse_time(lines: &Lines<'_>, raw: &Spanned<String>) -> Result<NaiveTime, RulesFileError> {
    let s = raw.get_ref();
    NaiveTime::parse_from_str(s, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .or_else(|_| lines.error(&raw.span(), format!("{s:?} is not a time of day as HH:MM or HH:MM:SS")))
}

fn parse_words<W>(lines: &Lines<'_>, raw: &[Spanned<String>]) -> Result<Vec<W>, RulesFileError>
where
    W: FromStr + PartialEq,
    W::Err: std::fmt::Display,
{
    let mut words = Vec::with_capacity(raw.len());
    for w in raw {
        let word = w.get_ref().parse::<W>().or_else(|e| lines.error(&w.span(), e.to_string()))?;
        if words.contains(&word) {
            return lines.error(&w.span(), format!("{:?} is listed twice", w.get_ref()));
        }
        words.push(word);
    }
    Ok(words)
}
