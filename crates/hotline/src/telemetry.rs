//! Logging: JSON lines on standard error by default, each carrying the
//! request's span (with its request id). Standard output is kept for what a
//! command prints for a person.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

const DEFAULT_FILTER: &str = "info,sqlx=warn,hyper=warn";

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("HOTLINE_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).init(),
        LogFormat::Text => builder.init(),
    }
}
