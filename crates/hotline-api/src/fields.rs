//! Field-by-field reading of a JSON object that collects every error at once,
//! names each by its path (`holder.date_of_birth`), and refuses unknown fields.
//! Messages never repeat the value sent: it may be personal data.

use serde_json::{Map, Value};

use crate::problem::FieldError;

/// What reading one body found: every field error, and, when asked to record,
/// the path of every field the parser knows (for the request contract test,
/// which holds each parser to its OpenAPI schema).
#[derive(Debug, Default)]
pub struct Reading {
    pub errors: Vec<FieldError>,
    known: Option<Vec<String>>,
}

impl Reading {
    /// A reading that also records the paths of the fields the parser knows.
    #[cfg(test)]
    pub fn recording() -> Self {
        Self { errors: Vec::new(), known: Some(Vec::new()) }
    }

    /// The recorded paths, array indexes written `[]` (`certificates[].serial`).
    #[cfg(test)]
    pub fn known_paths(&self) -> std::collections::BTreeSet<String> {
        let unindexed = |path: &String| {
            let mut out = String::with_capacity(path.len());
            let mut in_index = false;
            for c in path.chars() {
                match c {
                    '[' => {
                        in_index = true;
                        out.push_str("[]");
                    }
                    ']' => in_index = false,
                    c if !in_index => out.push(c),
                    _ => {}
                }
            }
            out
        };
        self.known.iter().flatten().map(unindexed).collect()
    }

    pub fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Reads the fields of one object; errors go to a shared reading.
pub struct Fields<'v, 'e> {
    object: &'v Map<String, Value>,
    prefix: String,
    known: Vec<&'static str>,
    reading: &'e mut Reading,
}

impl<'v, 'e> Fields<'v, 'e> {
    /// Reads `value` as an object; a non-object is one error for the whole path.
    pub fn of(value: &'v Value, prefix: &str, reading: &'e mut Reading) -> Option<Self> {
        match value.as_object() {
            Some(object) => Some(Self { object, prefix: prefix.to_owned(), known: Vec::new(), reading }),
            None => {
                let name = if prefix.is_empty() { "(body)" } else { prefix };
                reading.push(FieldError::new(name, "must be a JSON object"));
                None
            }
        }
    }

    fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_owned() } else { format!("{}.{name}", self.prefix) }
    }

    pub fn error(&mut self, name: &str, message: impl Into<String>) {
        let path = self.path(name);
        self.reading.push(FieldError::new(path, message));
    }

    /// The raw value of a field, marking it known.
    pub fn raw(&mut self, name: &'static str) -> Option<&'v Value> {
        self.known.push(name);
        if self.reading.known.is_some() {
            let path = self.path(name);
            self.reading.known.get_or_insert_default().push(path);
        }
        self.object.get(name).filter(|v| !v.is_null())
    }

    /// A string field parsed by `parse`; missing or wrong-typed fields are errors.
    pub fn required<T, E: std::fmt::Display>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        match self.raw(name) {
            None => {
                self.error(name, "is required");
                None
            }
            Some(value) => self.parse_value(name, value, parse),
        }
    }

    /// Like `required`, but absence (or null) is fine.
    pub fn optional<T, E: std::fmt::Display>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<Option<T>> {
        match self.raw(name) {
            None => Some(None),
            Some(value) => self.parse_value(name, value, parse).map(Some),
        }
    }

    fn parse_value<T, E: std::fmt::Display>(
        &mut self,
        name: &str,
        value: &Value,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let Some(s) = value.as_str() else {
            self.error(name, "must be a string");
            return None;
        };
        match parse(s) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(name, e.to_string());
                None
            }
        }
    }

    /// An optional list of 1 to `max` distinct vocabulary words; each bad word is reported at its index.
    pub fn optional_words<W>(&mut self, name: &'static str, max: usize) -> Option<Option<Vec<W>>>
    where
        W: std::str::FromStr<Err = hotline_core::vocabulary::UnknownWord> + PartialEq,
    {
        let Some(value) = self.raw(name) else { return Some(None) };
        let Some(list) = value.as_array() else {
            self.error(name, "must be a list of words");
            return None;
        };
        if list.is_empty() || list.len() > max {
            self.error(name, format!("must name 1 to {max} words"));
            return None;
        }
        let mut words = Vec::with_capacity(list.len());
        let mut ok = true;
        for (i, item) in list.iter().enumerate() {
            let parsed = item.as_str().ok_or_else(|| "must be a string".to_owned()).and_then(word::<W>);
            match parsed {
                Ok(w) if words.contains(&w) => {
                    self.error(&format!("{name}[{i}]"), "is named twice");
                    ok = false;
                }
                Ok(w) => words.push(w),
                Err(message) => {
                    self.error(&format!("{name}[{i}]"), message);
                    ok = false;
                }
            }
        }
        ok.then_some(Some(words))
    }

    /// A nested object, read by `read` with its own field paths.
    pub fn object<T>(&mut self, name: &'static str, read: impl FnOnce(Fields<'_, '_>) -> Option<T>) -> Option<T> {
        let Some(value) = self.raw(name) else {
            self.error(name, "is required");
            return None;
        };
        let path = self.path(name);
        let nested = Fields::of(value, &path, self.reading)?;
        read(nested)
    }

    /// Reports every field that was never asked for. Call last.
    pub fn refuse_unknown(self) {
        let mut unknown: Vec<&String> = self.object.keys().filter(|k| !self.known.contains(&k.as_str())).collect();
        unknown.sort();
        for key in unknown {
            let name: String = key.chars().take(64).collect();
            let path = if self.prefix.is_empty() { name } else { format!("{}.{name}", self.prefix) };
            self.reading.push(FieldError::new(path, "is not a known field"));
        }
    }
}

/// A closed-vocabulary word, with a message that lists the allowed words but not the one sent.
pub fn word<W>(s: &str) -> Result<W, String>
where
    W: std::str::FromStr<Err = hotline_core::vocabulary::UnknownWord>,
{
    s.parse::<W>().map_err(|e| format!("must be one of: {}", e.allowed.replace(' ', ", ")))
}

/// Free text a person typed (a police receipt number, a document name): 1 to `max` characters, no control characters.
pub fn short_text(max: usize) -> impl Fn(&str) -> Result<String, String> {
    move |s: &str| {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            Err("must not be empty".to_owned())
        } else if trimmed.chars().count() > max {
            Err(format!("must be at most {max} characters"))
        } else if trimmed.chars().any(char::is_control) {
            Err("must not contain control characters".to_owned())
        } else {
            Ok(trimmed.to_owned())
        }
    }
}
