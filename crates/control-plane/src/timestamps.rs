//! Times as the `kafka` API writes them (`__timestampIso8601`, e.g.
//! `2026-11-23T00:29:21.123Z`) and as the store keeps them (the same text,
//! so a record reads back exactly as it was answered).

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// Now, as an ISO-8601 UTC timestamp with milliseconds.
pub fn now_iso() -> String {
    format_iso(OffsetDateTime::now_utc())
}

/// Formats `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC.
pub fn format_iso(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&format).unwrap_or_else(|_| t.to_string())
}

/// Parses a timestamp written by [`format_iso`] (any RFC 3339 text).
pub fn parse_iso(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Milliseconds since the Unix epoch, for cool-down arithmetic.
pub fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
