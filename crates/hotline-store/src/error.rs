//! The store's error: an outage (the database could not be reached or could
//! not serve now: retry), a commit whose outcome is unknown (in doubt: retry
//! with the same idempotency key, never report it done or failed), or a bug.
//!
//! Classified once, here, from sqlx's own variants and SQLSTATE codes, never
//! from message text, so callers match on [`Error`] and [`Outage`] instead.
//! An outage that may have moved the primary (a lost connection, a server
//! shutting down, a standby where the primary was, a connection that hangs)
//! also tells the pool to drop every connection opened before it
//! ([`crate::pool_hygiene`]).

use std::fmt;

/// What kind of outage an error was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outage {
    /// The connection was refused, reset or closed mid-conversation (a server
    /// that crashed, a proxy that dropped it, a network cut; SQLSTATE 08…).
    ConnectionLost,
    /// The server is shutting down, restarting or not yet accepting
    /// connections, or terminated the session (57P01, 57P02, 57P03): a
    /// switchover's old primary, a crash recovery.
    ShuttingDown,
    /// The server is a read-only standby (25006): a connection that reached a
    /// node that is no longer (or not yet) the primary.
    ReadOnly,
    /// No connection could be had within the pool's acquire bound (every
    /// connect attempt failed or hung, or every connection was busy).
    NoConnection,
    /// A statement ran or waited past the server's bound (57014, the statement
    /// timeout; 55P03, a lock timeout).
    StatementTimeout,
    /// The database gave no answer within the caller's bound: a hung server or
    /// a network that passes nothing.
    Hung,
    /// The server refused a new connection for lack of slots (53300).
    TooManyConnections,
    /// SQLite: the database file stayed locked past the busy timeout.
    Busy,
}

impl Outage {
    /// The metric label and log word for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Outage::ConnectionLost => "connection_lost",
            Outage::ShuttingDown => "shutting_down",
            Outage::ReadOnly => "read_only",
            Outage::NoConnection => "no_connection",
            Outage::StatementTimeout => "statement_timeout",
            Outage::Hung => "hung",
            Outage::TooManyConnections => "too_many_connections",
            Outage::Busy => "busy",
        }
    }

    /// Every kind, for metrics that start each series at zero.
    pub const ALL: [Outage; 8] = [
        Outage::ConnectionLost,
        Outage::ShuttingDown,
        Outage::ReadOnly,
        Outage::NoConnection,
        Outage::StatementTimeout,
        Outage::Hung,
        Outage::TooManyConnections,
        Outage::Busy,
    ];

    /// Whether the connections opened before this outage may point at a
    /// server that is gone or no longer the primary, so none should be reused.
    fn distrusts_older_connections(self) -> bool {
        matches!(self, Outage::ConnectionLost | Outage::ShuttingDown | Outage::ReadOnly | Outage::Hung)
    }

    /// The kind of outage `error` is, if it is one.
    pub fn of_sqlx(error: &sqlx::Error) -> Option<Outage> {
        match error {
            sqlx::Error::PoolTimedOut => Some(Outage::NoConnection),
            sqlx::Error::PoolClosed => Some(Outage::ShuttingDown),
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed | sqlx::Error::Protocol(_) => {
                Some(Outage::ConnectionLost)
            }
            sqlx::Error::Database(e) => e.code().and_then(|code| Outage::of_sqlstate(&code)),
            _ => None,
        }
    }

    /// PostgreSQL's SQLSTATE, or SQLite's result code (primary or extended), as an outage.
    fn of_sqlstate(code: &str) -> Option<Outage> {
        if code.starts_with("08") {
            return Some(Outage::ConnectionLost);
        }
        match code {
            "57P01" | "57P02" | "57P03" => Some(Outage::ShuttingDown),
            "25006" => Some(Outage::ReadOnly),
            "55P03" | "57014" => Some(Outage::StatementTimeout),
            "53300" => Some(Outage::TooManyConnections),
            // SQLite reports extended codes too (SQLITE_BUSY_SNAPSHOT is 517): the low byte is the primary code.
            sqlite => match sqlite.parse::<u32>().map(|c| c & 0xff) {
                Ok(5 | 6) => Some(Outage::Busy),
                _ => None,
            },
        }
    }
}

impl fmt::Display for Outage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be reached or could not serve now; nothing was committed.
    #[error("the database is unavailable ({outage})")]
    Unavailable {
        outage: Outage,
        #[source]
        source: Source,
    },
    /// The connection failed while `COMMIT` was in flight: the transaction may
    /// have committed or not. Only the same idempotency key can tell.
    #[error("the commit's outcome is unknown ({outage})")]
    InDoubt {
        outage: Outage,
        #[source]
        source: Source,
    },
    /// Anything else: a bug, a constraint the code did not expect, a row it cannot read.
    #[error(transparent)]
    Unexpected(anyhow::Error),
}

/// The store's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An outage of `outage` kind, caused by `source`.
    pub fn unavailable(outage: Outage, source: impl Into<Source>) -> Error {
        if outage.distrusts_older_connections() {
            crate::pool_hygiene::distrust_connections_opened_before_now();
        }
        Error::Unavailable { outage, source: source.into() }
    }

    /// What an error from `COMMIT` means: an outage there leaves the outcome unknown.
    pub(crate) fn from_commit(error: sqlx::Error) -> Error {
        match Error::from(error) {
            Error::Unavailable { outage, source } => Error::InDoubt { outage, source },
            other => other,
        }
    }

    /// The same outage, in doubt: an earlier attempt of the same write may have committed.
    pub fn into_in_doubt(self) -> Error {
        match self {
            Error::Unavailable { outage, source } => Error::InDoubt { outage, source },
            other => other,
        }
    }

    /// The outage this error is (in doubt included), if it is one.
    pub fn outage(&self) -> Option<Outage> {
        match self {
            Error::Unavailable { outage, .. } | Error::InDoubt { outage, .. } => Some(*outage),
            Error::Unexpected(_) => None,
        }
    }

    /// This error and every cause under it, for a log line (`a: b: c`).
    pub fn report(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }

    /// The outage `error` carries anywhere in its chain, for callers that hold an `anyhow::Error`.
    pub fn outage_in(error: &anyhow::Error) -> Option<Outage> {
        error.chain().find_map(|cause| {
            if let Some(store) = cause.downcast_ref::<Error>() {
                return store.outage();
            }
            cause.downcast_ref::<sqlx::Error>().and_then(Outage::of_sqlx)
        })
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Error {
        match Outage::of_sqlx(&error) {
            Some(outage) => Error::unavailable(outage, error),
            None => Error::Unexpected(error.into()),
        }
    }
}

/// Context added on the way keeps the classification of what it wraps.
impl From<anyhow::Error> for Error {
    fn from(error: anyhow::Error) -> Error {
        let in_doubt = error.chain().any(|c| matches!(c.downcast_ref::<Error>(), Some(Error::InDoubt { .. })));
        match Error::outage_in(&error) {
            Some(outage) if in_doubt => Error::InDoubt { outage, source: error.into() },
            Some(outage) => Error::unavailable(outage, error),
            None => Error::Unexpected(error),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Error {
        Error::Unexpected(error.into())
    }
}

/// `Err(Error::Unexpected(anyhow!(…)))`, for the store's own `bail!`.
macro_rules! unexpected {
    ($($arg:tt)*) => {
        $crate::Error::Unexpected(::anyhow::anyhow!($($arg)*))
    };
}
pub(crate) use unexpected;

/// `return Err(unexpected!(…))`: the store's own `bail!`.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::unexpected!($($arg)*))
    };
}
pub(crate) use bail;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_name_their_outage_and_others_are_not_outages() {
        let cases = [
            ("08006", Some(Outage::ConnectionLost)),
            ("08001", Some(Outage::ConnectionLost)),
            ("57P01", Some(Outage::ShuttingDown)),
            ("57P03", Some(Outage::ShuttingDown)),
            ("25006", Some(Outage::ReadOnly)),
            ("55P03", Some(Outage::StatementTimeout)),
            ("57014", Some(Outage::StatementTimeout)),
            ("53300", Some(Outage::TooManyConnections)),
            ("5", Some(Outage::Busy)),
            ("517", Some(Outage::Busy)),
            ("6", Some(Outage::Busy)),
            ("23505", None),
            ("40001", None),
            ("19", None),
            ("2067", None),
        ];
        for (code, want) in cases {
            assert_eq!(Outage::of_sqlstate(code), want, "{code}");
        }
    }

    #[test]
    fn context_keeps_the_kind_of_what_it_wraps() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let wrapped = anyhow::Error::from(Error::from(io)).context("reading the holder");
        assert_eq!(Error::from(wrapped).outage(), Some(Outage::ConnectionLost));
        let commit = Error::from_commit(sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)));
        assert!(matches!(commit, Error::InDoubt { outage: Outage::ConnectionLost, .. }), "{commit:?}");
        let again = Error::from(anyhow::Error::from(commit).context("suspending"));
        assert!(matches!(again, Error::InDoubt { .. }), "in doubt stays in doubt through context: {again:?}");
        let bug = Error::from(anyhow::anyhow!("a row the code cannot read"));
        assert!(matches!(bug, Error::Unexpected(_)) && bug.outage().is_none());
    }

    #[test]
    fn a_commit_that_fails_for_a_reason_other_than_an_outage_is_not_in_doubt() {
        let decode = Error::from_commit(sqlx::Error::RowNotFound);
        assert!(matches!(decode, Error::Unexpected(_)), "{decode:?}");
    }
}
