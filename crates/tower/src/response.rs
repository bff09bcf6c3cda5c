//! What the retry layer reads from a response: its status and a `Retry-After`.

use std::time::{Duration, SystemTime};

use http::Response;

/// A response the retry layer can look at (application statuses are retried only when the
/// policy opts in: [`crate::RetryPolicy::with_status_retry`]).
pub trait RetryResponse {
    /// The application status (HTTP status code), if the response has one.
    fn status_code(&self) -> Option<u16>;
    /// How long the peer asked us to wait before trying again, if it did.
    fn retry_after(&self) -> Option<Duration>;
}

impl<B> RetryResponse for Response<B> {
    fn status_code(&self) -> Option<u16> {
        Some(self.status().as_u16())
    }

    fn retry_after(&self) -> Option<Duration> {
        let v = self
            .headers()
            .get(http::header::RETRY_AFTER)?
            .to_str()
            .ok()?;
        parse_retry_after(v, SystemTime::now())
    }
}

/// A session's reply has no status: never retried by status.
impl RetryResponse for redial_driver::Reply {
    fn status_code(&self) -> Option<u16> {
        None
    }
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// Parses a `Retry-After` value (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date measured
/// from `now` (a date in the past is zero). Anything else is `None`: ignored, never a panic.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_dates_and_garbage() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("99999999999999999999999", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }
}
