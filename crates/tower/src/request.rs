//! What the retry layer needs to know about a request: is it safe to send twice, can it be
//! sent again at all, and how to name it in a log without its secrets.

use std::fmt;

use http::{Method, Request};

use crate::body::ReplayBody;

/// The header that makes any request safe to retry: the server deduplicates by it
/// (draft-ietf-httpapi-idempotency-key-header).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A request extension marking a request as idempotent whatever its method:
/// `request.extensions_mut().insert(Idempotent)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Idempotent;

/// Whether sending a request twice is safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Safety {
    /// Applying it twice is the same as once (HTTP GET, HEAD, OPTIONS, PUT, DELETE, TRACE, or
    /// marked [`Idempotent`]).
    Idempotent,
    /// It carries an idempotency key: the server applies it at most once.
    Keyed,
    /// It may have effects each time (a POST, a PATCH): sent at most once.
    AtMostOnce,
}

impl Safety {
    /// Whether a copy may be sent after the first may have been executed.
    pub const fn may_repeat(self) -> bool {
        matches!(self, Safety::Idempotent | Safety::Keyed)
    }
}

/// A request the retry layer can reason about.
pub trait RetryRequest: Sized {
    /// Whether it may be sent twice.
    fn safety(&self) -> Safety;

    /// A copy to send if this one fails, or `None` when it cannot be replayed (a streaming
    /// body): such a request is sent once, and a failure that would have been retried is
    /// reported as [`crate::RetryErrorKind::NotReplayable`].
    fn try_replay(&self) -> Option<Self>;

    /// What to call it in logs and errors: method and target, never headers, credentials or
    /// the query string.
    fn describe(&self) -> Described;
}

/// A request's name for logs and errors (see [`RetryRequest::describe`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Described {
    /// The method (`POST`), when the request has one.
    pub method: Option<String>,
    /// The target: scheme, host, port and path, without user info or query.
    pub target: String,
}

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.method {
            Some(m) => write!(f, "{m} {}", self.target),
            None => f.write_str(&self.target),
        }
    }
}

/// Whether the method is idempotent by RFC 9110 §9.2.2.
pub fn idempotent_method(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
        Method::TRACE,
    ]
    .contains(method)
}

/// The target of a URI without user info (`user:password@`) or query (`?token=`).
fn target_of(uri: &http::Uri) -> String {
    let mut s = String::new();
    if let Some(scheme) = uri.scheme_str() {
        s.push_str(scheme);
        s.push_str("://");
    }
    if let Some(host) = uri.host() {
        s.push_str(host);
    }
    if let Some(port) = uri.port_u16() {
        s.push(':');
        s.push_str(&port.to_string());
    }
    s.push_str(uri.path());
    s
}

impl<B: ReplayBody> RetryRequest for Request<B> {
    fn safety(&self) -> Safety {
        if idempotent_method(self.method()) || self.extensions().get::<Idempotent>().is_some() {
            Safety::Idempotent
        } else if self.headers().contains_key(IDEMPOTENCY_KEY) {
            Safety::Keyed
        } else {
            Safety::AtMostOnce
        }
    }

    fn try_replay(&self) -> Option<Self> {
        let body = self.body().replay()?;
        let mut copy = Request::new(body);
        *copy.method_mut() = self.method().clone();
        *copy.uri_mut() = self.uri().clone();
        *copy.version_mut() = self.version();
        *copy.headers_mut() = self.headers().clone();
        *copy.extensions_mut() = self.extensions().clone();
        Some(copy)
    }

    fn describe(&self) -> Described {
        Described {
            method: Some(self.method().to_string()),
            target: target_of(self.uri()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;

    fn req(method: Method) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri("http://alice:pw@example.com:8080/a/b?token=abc")
            .header("authorization", "Bearer s3cret")
            .body(Full::new(Bytes::from_static(b"x")))
            .unwrap()
    }

    #[test]
    fn methods_marks_and_keys() {
        for m in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
            Method::TRACE,
        ] {
            assert_eq!(req(m).safety(), Safety::Idempotent);
        }
        assert_eq!(req(Method::POST).safety(), Safety::AtMostOnce);
        assert_eq!(req(Method::PATCH).safety(), Safety::AtMostOnce);
        let mut marked = req(Method::POST);
        marked.extensions_mut().insert(Idempotent);
        assert_eq!(marked.safety(), Safety::Idempotent);
        let mut keyed = req(Method::POST);
        keyed
            .headers_mut()
            .insert(IDEMPOTENCY_KEY, "k1".parse().unwrap());
        assert_eq!(keyed.safety(), Safety::Keyed);
        assert!(!Safety::AtMostOnce.may_repeat());
    }

    #[test]
    fn described_without_secrets_and_replayed_whole() {
        let r = req(Method::POST);
        let d = r.describe().to_string();
        assert_eq!(d, "POST http://example.com:8080/a/b");
        let copy = r.try_replay().unwrap();
        assert_eq!(copy.headers(), r.headers());
        assert_eq!(copy.uri(), r.uri());
    }
}
