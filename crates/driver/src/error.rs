//! `io::Error` → the core's [`NetError`] classes.

use std::io;
#[cfg(test)]
use std::io::ErrorKind;

use redial_core::NetError;

/// Classifies an I/O error for the core (see [`NetError::from_io`]).
pub fn classify(e: &io::Error) -> NetError {
    NetError::from_io(e)
}

/// Classifies a resolution error (see [`NetError::from_resolve_io`]).
pub fn classify_resolve(e: &io::Error) -> NetError {
    NetError::from_resolve_io(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_classes() {
        let c = |k| classify(&io::Error::from(k));
        assert_eq!(c(ErrorKind::ConnectionRefused), NetError::Refused);
        assert_eq!(c(ErrorKind::ConnectionReset), NetError::Reset);
        assert_eq!(c(ErrorKind::HostUnreachable), NetError::Unreachable);
        assert!(!c(ErrorKind::PermissionDenied).is_retryable());
        assert!(c(ErrorKind::Other).is_retryable());
        let r = classify_resolve(&io::Error::other("no such host"));
        assert_eq!(r, NetError::ResolveFailed);
    }
}
