//! The reception-rule engine.
//!
//! Rules are data with an effective date: a [`RuleBook`] holds rule sets in
//! order, each in force from its `effective_from` until the next one starts.
//! A rule set splits the Tokyo day into a day window and a night window and
//! says which items each window accepts. [`RuleBook::decide`] answers for one
//! instant and one item; the instant is always supplied by the caller.

mod file;

pub use crate::vocabulary::Mode;
use crate::vocabulary::{Item, Language};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Asia::Tokyo;

pub use file::RulesFileError;

/// The built-in rule file, encoding SPEC.md.
pub const DEFAULT_RULES_TOML: &str = include_str!("default.toml");

/// Languages whose operators are on duty between two Tokyo wall-clock times.
/// Informational only: staffing never decides whether a report is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staffing {
    pub languages: Vec<Language>,
    pub from: NaiveTime,
    /// `None` means until midnight (written `24:00` in the file).
    pub until: Option<NaiveTime>,
}

/// One rule set, in force from `effective_from` until the next set starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    pub version: String,
    pub effective_from: DateTime<Utc>,
    pub day_starts: NaiveTime,
    pub night_starts: NaiveTime,
    pub day_items: Vec<Item>,
    pub night_items: Vec<Item>,
    pub staffed: Vec<Staffing>,
}

impl RuleSet {
    fn mode_at(&self, instant: DateTime<Utc>) -> Mode {
        let t = instant.with_timezone(&Tokyo).time();
        if self.day_starts <= t && t < self.night_starts { Mode::Day } else { Mode::Night }
    }

    fn accepts(&self, mode: Mode, item: Item) -> bool {
        match mode {
            Mode::Day => self.day_items.contains(&item),
            Mode::Night => self.night_items.contains(&item),
        }
    }

    /// The first window boundary (day start or night start) strictly after `instant`.
    fn next_boundary_after(&self, instant: DateTime<Utc>) -> DateTime<Utc> {
        let local_date = instant.with_timezone(&Tokyo).date_naive();
        [local_date, local_date + Duration::days(1), local_date + Duration::days(2)]
            .into_iter()
            .flat_map(|d| [tokyo_instant(d, self.day_starts), tokyo_instant(d, self.night_starts)])
            .filter(|t| *t > instant)
            .min()
            // Two days ahead always holds a boundary after `instant`; the fallback keeps the engine total.
            .unwrap_or(instant + Duration::days(1))
    }

    fn staffed_at(&self, instant: DateTime<Utc>) -> Vec<Language> {
        let t = instant.with_timezone(&Tokyo).time();
        let mut languages: Vec<Language> = self
            .staffed
            .iter()
            .filter(|s| s.from <= t && s.until.is_none_or(|until| t < until))
            .flat_map(|s| s.languages.iter().copied())
            .collect();
        languages.sort();
        languages.dedup();
        languages
    }
}

/// An instant as Tokyo wall-clock time with its offset and milliseconds, e.g.
/// `2026-11-23T08:30:00.000+09:00`: how operators and callers read times, as
/// precise as the service's freshness bounds (an answer 40 ms after a
/// suspension can be told from one 40 ms before it).
pub fn tokyo_rfc3339(instant: DateTime<Utc>) -> String {
    instant.with_timezone(&Tokyo).to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

/// The calendar date in Tokyo at `instant`.
pub fn tokyo_date(instant: DateTime<Utc>) -> NaiveDate {
    instant.with_timezone(&Tokyo).date_naive()
}

fn tokyo_instant(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    // Asia/Tokyo has had no DST since 1951, so every local time exists exactly once;
    // `earliest` keeps this total for any zone.
    Tokyo
        .from_local_datetime(&date.and_time(time))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| date.and_time(time).and_utc())
}

/// What the rules say about one report at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub mode: Mode,
    pub accepted: bool,
    pub rules_version: String,
    /// The next instant at which the mode changes.
    pub next_mode_change: Option<DateTime<Utc>>,
    /// For a refusal, the next instant at which this item is accepted.
    pub next_accepted_at: Option<DateTime<Utc>>,
}

/// What is in force at one instant, for `GET /v1/rules/now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub mode: Mode,
    pub accepted_items: Vec<Item>,
    pub rules_version: String,
    pub next_mode_change: Option<DateTime<Utc>>,
    pub staffed_languages: Vec<Language>,
}

/// No rule set is in force at the instant asked about (it precedes the first one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no rule set is in force at {0}")]
pub struct NotInForce(pub DateTime<Utc>);

/// How far ahead the engine looks for the next change before giving up.
const HORIZON_STEPS: usize = 2 * 800;

/// Rule sets ordered by `effective_from`, strictly increasing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleBook {
    sets: Vec<RuleSet>,
}

impl RuleBook {
    /// The built-in rules (SPEC.md).
    pub fn builtin() -> Result<Self, RulesFileError> {
        Self::from_toml(DEFAULT_RULES_TOML)
    }

    /// Parses and validates a rule file; errors name the offending line.
    pub fn from_toml(text: &str) -> Result<Self, RulesFileError> {
        file::parse(text).map(|sets| Self { sets })
    }

    pub fn sets(&self) -> &[RuleSet] {
        &self.sets
    }

    fn set_at(&self, instant: DateTime<Utc>) -> Option<(usize, &RuleSet)> {
        let idx = self.sets.partition_point(|s| s.effective_from <= instant);
        idx.checked_sub(1).map(|i| (i, &self.sets[i]))
    }

    /// The next instant after `instant` where the mode or the rule set may change.
    fn next_event_after(&self, instant: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next_set = self.sets.iter().map(|s| s.effective_from).find(|t| *t > instant);
        let boundary = self.set_at(instant).map(|(_, s)| s.next_boundary_after(instant));
        match (boundary, next_set) {
            (Some(b), Some(n)) => Some(b.min(n)),
            (b, n) => b.or(n),
        }
    }

    /// Walks forward over mode and rule-set changes until `stop` holds.
    fn first_event_where(
        &self,
        from: DateTime<Utc>,
        mut stop: impl FnMut(&RuleSet, DateTime<Utc>) -> bool,
    ) -> Option<DateTime<Utc>> {
        let mut t = from;
        for _ in 0..HORIZON_STEPS {
            t = self.next_event_after(t)?;
            if let Some((_, set)) = self.set_at(t)
                && stop(set, t)
            {
                return Some(t);
            }
        }
        None
    }

    fn next_mode_change(&self, instant: DateTime<Utc>, mode: Mode) -> Option<DateTime<Utc>> {
        self.first_event_where(instant, |set, t| set.mode_at(t) != mode)
    }

    /// Decides whether a report of `item` is accepted at `instant`.
    pub fn decide(&self, instant: DateTime<Utc>, item: Item) -> Result<Decision, NotInForce> {
        let (_, set) = self.set_at(instant).ok_or(NotInForce(instant))?;
        let mode = set.mode_at(instant);
        let accepted = set.accepts(mode, item);
        let next_accepted_at =
            if accepted { None } else { self.first_event_where(instant, |set, t| set.accepts(set.mode_at(t), item)) };
        Ok(Decision {
            mode,
            accepted,
            rules_version: set.version.clone(),
            next_mode_change: self.next_mode_change(instant, mode),
            next_accepted_at,
        })
    }

    /// What is in force at `instant`, for display.
    pub fn snapshot(&self, instant: DateTime<Utc>) -> Result<Snapshot, NotInForce> {
        let (_, set) = self.set_at(instant).ok_or(NotInForce(instant))?;
        let mode = set.mode_at(instant);
        Ok(Snapshot {
            mode,
            accepted_items: Item::ALL.iter().copied().filter(|i| set.accepts(mode, *i)).collect(),
            rules_version: set.version.clone(),
            next_mode_change: self.next_mode_change(instant, mode),
            staffed_languages: set.staffed_at(instant),
        })
    }
}

#[cfg(test)]
mod tests;
