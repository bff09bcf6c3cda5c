//! reqwest: `reqwest::Client` is a `tower::Service<reqwest::Request>`, so the retry layer wraps
//! it directly (feature `reqwest`).

use std::time::{Duration, SystemTime};

use crate::request::{idempotent_method, Described, RetryRequest, Safety, IDEMPOTENCY_KEY};
use crate::response::{parse_retry_after, RetryResponse};

/// reqwest requests: safe by method or an `Idempotency-Key` header (reqwest requests carry no
/// extensions, so [`crate::Idempotent`] cannot mark them); replayed with
/// `reqwest::Request::try_clone`, which refuses streaming bodies.
impl RetryRequest for reqwest::Request {
    fn safety(&self) -> Safety {
        if idempotent_method(self.method()) {
            Safety::Idempotent
        } else if self.headers().contains_key(IDEMPOTENCY_KEY) {
            Safety::Keyed
        } else {
            Safety::AtMostOnce
        }
    }

    fn try_replay(&self) -> Option<Self> {
        self.try_clone()
    }

    fn describe(&self) -> Described {
        let url = self.url();
        let mut target = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
        if let Some(port) = url.port() {
            target.push_str(&format!(":{port}"));
        }
        target.push_str(url.path());
        Described {
            method: Some(self.method().to_string()),
            target,
        }
    }
}

impl RetryResponse for reqwest::Response {
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
