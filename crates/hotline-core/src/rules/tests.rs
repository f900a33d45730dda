//! Tests of the rule engine: the published boundaries, properties over
//! arbitrary instants, and refusal of bad rule files with the line named.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Asia::Tokyo;
use proptest::prelude::*;

use super::*;

fn book() -> RuleBook {
    RuleBook::builtin().unwrap()
}

fn jst(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Tokyo.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap().with_timezone(&Utc)
}

#[test]
fn the_builtin_rules_parse_and_are_ordered() {
    let b = book();
    assert_eq!(b.sets().len(), 2);
    assert!(b.sets()[0].effective_from < b.sets()[1].effective_from);
}

#[test]
fn boundaries_of_the_day_window() {
    let b = book();
    let cases = [
        ((8, 29, 59), Mode::Night, false),
        ((8, 30, 0), Mode::Day, true),
        ((19, 59, 59), Mode::Day, true),
        ((20, 0, 0), Mode::Night, false),
    ];
    for ((h, m, s), mode, card_accepted) in cases {
        let t = jst(2026, 11, 22, h, m, s);
        let d = b.decide(t, Item::Card).unwrap();
        assert_eq!(d.mode, mode, "{h}:{m}:{s}");
        assert_eq!(d.accepted, card_accepted, "card at {h}:{m}:{s}");
        assert_eq!(d.rules_version, "jpki-2023-05");
        let phone = b.decide(t, Item::Smartphone).unwrap();
        assert!(phone.accepted, "smartphone at {h}:{m}:{s}");
    }
}

#[test]
fn a_refusal_at_night_names_the_next_0830() {
    let b = book();
    let evening = b.decide(jst(2026, 11, 22, 20, 0, 0), Item::NotificationCard).unwrap();
    assert!(!evening.accepted);
    assert_eq!(evening.next_accepted_at, Some(jst(2026, 11, 23, 8, 30, 0)));
    let early = b.decide(jst(2026, 11, 23, 8, 29, 59), Item::NumberNotice).unwrap();
    assert_eq!(early.next_accepted_at, Some(jst(2026, 11, 23, 8, 30, 0)));
}

#[test]
fn next_mode_change_at_each_boundary() {
    let b = book();
    assert_eq!(
        b.decide(jst(2026, 11, 22, 8, 29, 59), Item::Card).unwrap().next_mode_change,
        Some(jst(2026, 11, 22, 8, 30, 0))
    );
    assert_eq!(
        b.decide(jst(2026, 11, 22, 8, 30, 0), Item::Card).unwrap().next_mode_change,
        Some(jst(2026, 11, 22, 20, 0, 0))
    );
    assert_eq!(
        b.decide(jst(2026, 11, 22, 20, 0, 0), Item::Card).unwrap().next_mode_change,
        Some(jst(2026, 11, 23, 8, 30, 0))
    );
}

#[test]
fn the_old_rule_set_took_cards_at_night() {
    let d = book().decide(jst(2020, 1, 1, 3, 0, 0), Item::Card).unwrap();
    assert!(d.accepted);
    assert_eq!(d.mode, Mode::Night);
    assert_eq!(d.rules_version, "jpki-2016-01");
}

#[test]
fn a_scheduled_rule_set_takes_effect_at_its_instant() {
    let b = book();
    let before = b.decide(jst(2023, 5, 10, 23, 59, 59), Item::Card).unwrap();
    let after = b.decide(jst(2023, 5, 11, 0, 0, 0), Item::Card).unwrap();
    assert!(before.accepted);
    assert!(!after.accepted);
    assert_eq!(after.rules_version, "jpki-2023-05");
}

#[test]
fn before_the_first_rule_set_nothing_is_in_force() {
    assert!(book().decide(jst(2010, 1, 1, 12, 0, 0), Item::Card).is_err());
}

#[test]
fn staffed_languages_follow_the_published_hours() {
    let b = book();
    let at_0845 = b.snapshot(jst(2026, 11, 22, 8, 45, 0)).unwrap();
    assert_eq!(
        at_0845.staffed_languages,
        vec![Language::Ja, Language::En, Language::Zh, Language::Ko, Language::Es, Language::Pt]
    );
    let at_1000 = b.snapshot(jst(2026, 11, 22, 10, 0, 0)).unwrap();
    assert_eq!(at_1000.staffed_languages.len(), 11);
    let at_2300 = b.snapshot(jst(2026, 11, 22, 23, 0, 0)).unwrap();
    assert_eq!(at_2300.staffed_languages, vec![Language::Ja]);
    assert_eq!(at_2300.accepted_items, vec![Item::Smartphone]);
}

fn file_error(text: &str) -> RulesFileError {
    RuleBook::from_toml(text).unwrap_err()
}

const ONE_SET: &str = r#"[[rule_set]]
version = "a"
effective_from = "2024-01-01T00:00:00+09:00"
day_starts = "08:30"
night_starts = "20:00"
day_items = ["card"]
night_items = ["smartphone"]
"#;

#[test]
fn unordered_sets_are_refused_naming_the_line() {
    let text = format!("{ONE_SET}\n{}", ONE_SET.replace("\"a\"", "\"b\"").replace("2024-01-01", "2023-01-01"));
    let e = file_error(&text);
    assert_eq!(e.line, 11, "{e}");
    assert!(e.message.contains("order"), "{e}");
}

#[test]
fn overlapping_sets_are_refused_naming_the_line() {
    let text = format!("{ONE_SET}\n{}", ONE_SET.replace("\"a\"", "\"b\""));
    let e = file_error(&text);
    assert_eq!(e.line, 11, "{e}");
    assert!(e.message.contains("overlaps"), "{e}");
}

#[test]
fn unknown_items_are_refused_naming_the_line() {
    let e = file_error(&ONE_SET.replace("[\"smartphone\"]", "[\"smartphone\", \"passport\"]"));
    assert_eq!(e.line, 7, "{e}");
    assert!(e.message.contains("passport"), "{e}");
}

#[test]
fn bad_times_are_refused_naming_the_line() {
    let e = file_error(&ONE_SET.replace("\"20:00\"", "\"25:00\""));
    assert_eq!(e.line, 5, "{e}");
    let e = file_error(&ONE_SET.replace("\"08:30\"", "\"21:00\""));
    assert_eq!(e.line, 5, "{e}");
    let e = file_error(&ONE_SET.replace("+09:00", ""));
    assert_eq!(e.line, 3, "{e}");
}

#[test]
fn unknown_keys_and_syntax_errors_name_the_line() {
    let e = file_error(&ONE_SET.replace("night_items", "nite_items"));
    assert_eq!(e.line, 7, "{e}");
    assert!(e.message.contains("nite_items"), "{e}");
    let e = file_error("[[rule_set]]\nversion = \"a\"\nday_starts = \n");
    assert_eq!(e.line, 3, "{e}");
    assert_eq!(file_error("").line, 1);
}

fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 2023-05-11 .. 2040: the range in which the current rule set is in force.
    (1_683_730_800i64..2_208_988_800i64).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap_or_default())
}

fn any_item() -> impl Strategy<Value = Item> {
    prop::sample::select(Item::ALL.to_vec())
}

proptest! {
    #[test]
    fn mode_is_day_exactly_from_0830_to_2000_jst(t in any_instant(), item in any_item()) {
        let d = book().decide(t, item).unwrap();
        let local = t.with_timezone(&Tokyo).time();
        let day = local >= NaiveTime::from_hms_opt(8, 30, 0).unwrap() && local < NaiveTime::from_hms_opt(20, 0, 0).unwrap();
        prop_assert_eq!(d.mode == Mode::Day, day);
        prop_assert_eq!(d.accepted, day || item == Item::Smartphone);
    }

    #[test]
    fn a_refusal_names_the_first_instant_the_item_is_accepted(t in any_instant(), item in any_item()) {
        let b = book();
        let d = b.decide(t, item).unwrap();
        prop_assert_eq!(d.next_accepted_at.is_some(), !d.accepted);
        if let Some(next) = d.next_accepted_at {
            prop_assert!(next > t);
            prop_assert!(next - t <= Duration::hours(12) + Duration::minutes(30));
            prop_assert!(b.decide(next, item).unwrap().accepted);
            prop_assert!(!b.decide(next - Duration::seconds(1), item).unwrap().accepted);
            let local = next.with_timezone(&Tokyo);
            prop_assert_eq!((local.hour(), local.minute(), local.second()), (8, 30, 0));
        }
    }

    #[test]
    fn the_next_mode_change_is_the_first_instant_the_mode_differs(t in any_instant()) {
        let b = book();
        let d = b.decide(t, Item::Card).unwrap();
        let next = d.next_mode_change.unwrap();
        prop_assert!(next > t);
        prop_assert_ne!(b.decide(next, Item::Card).unwrap().mode, d.mode);
        prop_assert_eq!(b.decide(next - Duration::seconds(1), Item::Card).unwrap().mode, d.mode);
    }

    #[test]
    fn the_decision_depends_on_the_instant_not_on_how_it_was_written(t in any_instant(), offset_h in -12i32..=14) {
        let offset = chrono::FixedOffset::east_opt(offset_h * 3600).unwrap();
        let written = t.with_timezone(&offset).to_rfc3339();
        let reread = DateTime::parse_from_rfc3339(&written).unwrap().with_timezone(&Utc);
        prop_assert_eq!(book().decide(reread, Item::Card).unwrap(), book().decide(t, Item::Card).unwrap());
    }
}
