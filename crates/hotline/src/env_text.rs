//! The `HOTLINE_*` variables as figment's `Env` reads them, but for one
//! thing: a value that reads as a number is kept as the text written. Env
//! turns `HOTLINE_REDIS_PREFIX=2026` into a number a text setting refuses,
//! and a hex key of digits beginning with zeros into a number that has lost
//! them; a setting that is a number reads the digits itself ([`Bounded`]).
//!
//! [`Bounded`]: crate::config::Bounded

use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};

/// `Env` with numbers kept as their text.
pub struct EnvText(pub figment::providers::Env);

impl Provider for EnvText {
    fn metadata(&self) -> Metadata {
        self.0.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, text) in self.0.iter() {
            let value = match text.parse::<Value>() {
                Ok(Value::Num(..)) | Err(_) => Value::from(text),
                Ok(value) => value,
            };
            dict.insert(key.as_str().to_owned(), value);
        }
        Ok(Profile::Default.collect(dict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Settings {
        prefix: String,
        key: String,
        batch: crate::config::Bounded<1, 100>,
        switch: bool,
    }

    #[test]
    #[expect(clippy::result_large_err, reason = "figment's Jail takes a closure that returns figment's own error")]
    fn text_stays_as_written_and_numbers_and_switches_still_read() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("T_PREFIX", "2026");
            jail.set_env("T_KEY", "000000000000000000000000000000000000000000000000000000000000000007");
            jail.set_env("T_BATCH", "64");
            jail.set_env("T_SWITCH", "false");
            let read: Settings = figment::Figment::from(EnvText(figment::providers::Env::prefixed("T_"))).extract()?;
            assert_eq!(read.prefix, "2026");
            assert_eq!(read.key.len(), 66, "leading zeros kept");
            assert_eq!(read.batch.get(), 64);
            assert!(!read.switch);
            jail.set_env("T_BATCH", "0");
            let refused =
                figment::Figment::from(EnvText(figment::providers::Env::prefixed("T_"))).extract::<Settings>();
            assert!(refused.unwrap_err().to_string().contains("from 1 to 100"));
            Ok(())
        });
    }
}
