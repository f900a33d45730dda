//! Each request's schema in the OpenAPI document against its parser: the
//! documented example is accepted; the fields the parser knows are the
//! schema's properties; the fields it requires are the schema's required
//! ones; and every closed vocabulary lists the words the parser accepts. A
//! field added to one side and not the other fails here.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::identify::read_identify;
use super::release::read_release;
use super::status_query::read_batch;
use super::suspension::read_report;
use crate::fields::Reading;
use crate::openapi::ApiDoc;

/// What a schema says about a body, by field path (`holder.date_of_birth`, `certificates[].serial`).
#[derive(Debug, Default)]
struct Documented {
    properties: BTreeSet<String>,
    required: BTreeSet<String>,
    /// Path → the words of its closed vocabulary.
    words: BTreeMap<String, BTreeSet<String>>,
}

fn document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap()
}

/// Follows `$ref`s, and the `oneOf` utoipa writes for an optional reference.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return resolve(doc, &doc["components"]["schemas"][name]);
    }
    if let Some(one_of) = schema["oneOf"].as_array() {
        let not_null: Vec<&Value> = one_of.iter().filter(|s| s["type"] != "null").collect();
        if let [only] = not_null.as_slice() {
            return resolve(doc, only);
        }
    }
    schema
}

fn describe(doc: &Value, schema: &Value, prefix: &str, out: &mut Documented) {
    let schema = resolve(doc, schema);
    let required: BTreeSet<&str> =
        schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    for (name, property) in schema["properties"].as_object().expect("an object schema") {
        let path = format!("{prefix}{name}");
        out.properties.insert(path.clone());
        if required.contains(name.as_str()) {
            out.required.insert(path.clone());
        }
        let property = resolve(doc, property);
        if let Some(words) = property["enum"].as_array() {
            out.words.insert(path.clone(), words.iter().map(|w| w.as_str().unwrap().to_owned()).collect());
        } else if property["properties"].is_object() {
            describe(doc, property, &format!("{path}."), out);
        } else if property["items"].is_object() && resolve(doc, &property["items"])["properties"].is_object() {
            describe(doc, &property["items"], &format!("{path}[]."), out);
        }
    }
}

fn documented(name: &str) -> (Documented, Value) {
    let doc = document();
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "the document has no schema {name}");
    let mut out = Documented::default();
    describe(&doc, schema, "", &mut out);
    let example = schema["example"].clone();
    assert!(example.is_object(), "{name} documents an example body");
    (out, example)
}

/// Sets the value at a documented path (`holder.item`, `certificates[].serial` in the first element).
fn set(body: &mut Value, path: &str, value: Value) {
    let mut at = body;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        at = match part.strip_suffix("[]") {
            Some(list) => &mut at[list][0],
            None => &mut at[*part],
        };
    }
    at[parts[parts.len() - 1]] = value;
}

fn error_paths(reading: &Reading) -> BTreeSet<String> {
    reading.errors.iter().map(|e| e.field.replace("[0]", "[]")).collect()
}

/// Checks one request's schema against its parser, `read` reading a body into a [`Reading`].
fn holds(name: &str, read: impl Fn(&Value, &mut Reading)) {
    let (documented, example) = documented(name);

    // The documented example is accepted, and it uses every documented property.
    let mut reading = Reading::recording();
    read(&example, &mut reading);
    assert!(reading.is_ok(), "{name}: the documented example is refused: {:?}", reading.errors);
    assert_eq!(reading.known_paths(), documented.properties, "{name}: the fields the parser knows");

    // Required: emptied at each level, the parser asks for exactly the documented required fields.
    let mut required = BTreeSet::new();
    let mut empty_levels = vec![json!({})];
    for path in &documented.properties {
        if let Some((parent, _)) = path.rsplit_once('.') {
            let mut body = example.clone();
            let emptied = if parent.ends_with("[]") { json!([{}]) } else { json!({}) };
            set(&mut body, parent.strip_suffix("[]").unwrap_or(parent), emptied);
            empty_levels.push(body);
        }
    }
    for body in &empty_levels {
        let mut reading = Reading::default();
        read(body, &mut reading);
        required.extend(
            reading
                .errors
                .iter()
                .filter(|e| e.message.starts_with("is required"))
                .map(|e| e.field.replace("[0]", "[]")),
        );
    }
    assert_eq!(required, documented.required, "{name}: the fields the parser requires");

    // Vocabularies: each documented word is accepted there, and the parser names the same words.
    for (path, words) in &documented.words {
        for word in words {
            let mut body = example.clone();
            set(&mut body, path, json!(word));
            let mut reading = Reading::default();
            read(&body, &mut reading);
            assert!(!error_paths(&reading).contains(path), "{name}: {path} = {word:?} is refused");
        }
        let mut body = example.clone();
        set(&mut body, path, json!("no-such-word"));
        let mut reading = Reading::default();
        read(&body, &mut reading);
        let message = &reading.errors.iter().find(|e| &e.field == path).expect("an unknown word is refused").message;
        let named: BTreeSet<String> =
            message.trim_start_matches("must be one of: ").split(", ").map(str::to_owned).collect();
        assert_eq!(&named, words, "{name}: the words of {path}");
    }
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
}

#[test]
fn the_suspension_request_is_what_its_parser_reads() {
    holds("SuspensionRequest", |body, reading| {
        read_report(body, today(), reading);
    });
}

#[test]
fn the_identification_request_is_what_its_parser_reads() {
    holds("IdentifyRequest", |body, reading| {
        read_identify(body, today(), reading);
    });
}

#[test]
fn the_release_request_is_what_its_parser_reads() {
    holds("ReleaseRequest", |body, reading| {
        read_release(body, reading);
    });
}

#[test]
fn the_batch_status_query_is_what_its_parser_reads() {
    holds("BatchStatusQuery", |body, reading| {
        let _ = read_batch(body, &|_| true, reading);
    });
}

#[test]
fn the_contract_check_catches_a_field_the_schema_does_not_document() {
    // The same check over a parser that reads one field more: it must fail.
    let drifted = std::panic::catch_unwind(|| {
        holds("ReleaseRequest", |body, reading| {
            if let Some(mut f) = crate::fields::Fields::of(body, "", reading) {
                let _ = f.required("verified_with", crate::fields::short_text(200));
                let _ = f.optional("note", crate::fields::short_text(1000));
                let _ = f.optional("witness", crate::fields::short_text(100));
                f.refuse_unknown();
            }
        });
    });
    assert!(drifted.is_err(), "an undocumented field must fail the contract");
}
