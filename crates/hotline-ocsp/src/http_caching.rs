//! What RFC 5019 §6's HTTP caching headers say of a signed response
//! (`ETag`, `Last-Modified`, `Expires`), written once when it is signed: a
//! kept response is sent many times a second, and these never change for it.
//! Only `Cache-Control`'s `max-age`, which counts down, is written per request.

use chrono::{DateTime, Utc};

/// The header values of one signed response, as their bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachingHeaders {
    /// A strong validator for exactly the response's bytes: its digest in hex, quoted.
    pub etag: bytes::Bytes,
    /// `thisUpdate` as an HTTP-date.
    pub last_modified: bytes::Bytes,
    /// `nextUpdate` as an HTTP-date.
    pub expires: bytes::Bytes,
}

impl CachingHeaders {
    pub fn new(digest: &[u8], this_update: DateTime<Utc>, next_update: DateTime<Utc>) -> Self {
        Self::with_response(Vec::new(), digest, this_update, next_update).1
    }

    /// The response's bytes and its headers in one buffer, as slices of it:
    /// every send clones each of them, and slices of one buffer share one
    /// reference count, where four buffers were four cache misses.
    pub fn with_response(
        response: Vec<u8>,
        digest: &[u8],
        this_update: DateTime<Utc>,
        next_update: DateTime<Utc>,
    ) -> (bytes::Bytes, Self) {
        let texts = [format!("\"{}\"", hex::encode(digest)), http_date(this_update), http_date(next_update)];
        let mut buffer = response;
        let mut ends = [0; 4];
        ends[0] = buffer.len();
        for (i, text) in texts.iter().enumerate() {
            buffer.extend_from_slice(text.as_bytes());
            ends[i + 1] = buffer.len();
        }
        let all = bytes::Bytes::from(buffer);
        let headers = Self {
            etag: all.slice(ends[0]..ends[1]),
            last_modified: all.slice(ends[1]..ends[2]),
            expires: all.slice(ends[2]..ends[3]),
        };
        (all.slice(..ends[0]), headers)
    }
}

/// An HTTP-date (RFC 9110 §5.6.7, IMF-fixdate).
pub fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(http_date(DateTime::from_timestamp(1_764_633_600, 0).unwrap()), "Tue, 02 Dec 2025 00:00:00 GMT");
        assert_eq!(http_date(DateTime::from_timestamp(0, 0).unwrap()), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn the_etag_is_the_digest_quoted() {
        let t = DateTime::from_timestamp(1_764_633_600, 0).unwrap();
        let headers = CachingHeaders::new(&[0x0f, 0xa0], t, t + chrono::Duration::seconds(60));
        assert_eq!(headers.etag.as_ref(), b"\"0fa0\"");
        assert_eq!(headers.expires.as_ref(), b"Tue, 02 Dec 2025 00:01:00 GMT");
        let (der, same) = CachingHeaders::with_response(
            vec![0x30, 0x03, 0x0a, 0x01, 0x00],
            &[0x0f, 0xa0],
            t,
            t + chrono::Duration::seconds(60),
        );
        assert_eq!(der.as_ref(), [0x30, 0x03, 0x0a, 0x01, 0x00], "the response's bytes are as they were");
        assert_eq!(same, headers);
        assert_eq!(same.last_modified.as_ref(), b"Tue, 02 Dec 2025 00:00:00 GMT");
    }
}
