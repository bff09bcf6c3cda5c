//! Handshake errors, classified: a certificate the peer cannot prove (or one of ours it
//! refuses) is permanent, so a wrong CA gives up at once instead of retrying forever; a reset,
//! an EOF or a garbled handshake is retried like any network error.

use std::io;

use redial_driver::{ConnectError, NetError};
use rustls::AlertDescription;
use rustls_pki_types::ServerName;

/// Whether `e` says a certificate failed: ours verifying theirs (unknown issuer, expired,
/// wrong name, revoked), or theirs refusing ours (a certificate alert).
pub fn is_certificate_error(e: &rustls::Error) -> bool {
    match e {
        rustls::Error::InvalidCertificate(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::InvalidCertRevocationList(_) => true,
        rustls::Error::AlertReceived(a) => matches!(
            a,
            AlertDescription::BadCertificate
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnknownCA
                | AlertDescription::AccessDenied
                | AlertDescription::CertificateRequired
        ),
        _ => false,
    }
}

/// Classifies an error of the TLS handshake with `server_name`: certificate failures are
/// [`NetError::PermissionDenied`] (never retried); other TLS errors are
/// [`NetError::Protocol`] and I/O errors keep their class (both retried). The message names
/// the server and, for certificates, the problem.
pub fn classify_handshake(e: io::Error, server_name: &ServerName<'_>) -> ConnectError {
    let name = server_name.to_str();
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        let class = NetError::from_io(&e);
        return ConnectError::new(
            class,
            io::Error::new(e.kind(), format!("tls handshake with {name}: {e}")),
        );
    };
    if is_certificate_error(tls) {
        let hint = match tls {
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
                " (the server's certificate is not signed by a CA we trust)"
            }
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
            | rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            ) => " (the server's certificate is for another name)",
            rustls::Error::AlertReceived(_) => " (the server refused our client certificate)",
            _ => "",
        };
        return ConnectError::new(
            NetError::PermissionDenied,
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("tls certificate verification failed for {name}: {tls}{hint}"),
            ),
        );
    }
    ConnectError::new(
        NetError::Protocol,
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("tls handshake with {name} failed: {tls}"),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> ServerName<'static> {
        ServerName::try_from("localhost").unwrap()
    }

    #[test]
    fn certificates_are_permanent_the_rest_retried() {
        let bad = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let e = classify_handshake(bad, &name());
        assert_eq!(e.class, NetError::PermissionDenied);
        assert!(e.to_string().contains("UnknownIssuer"), "{e}");
        assert!(e.to_string().contains("localhost"), "{e}");
        let alert = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::UnknownCA),
        );
        assert_eq!(
            classify_handshake(alert, &name()).class,
            NetError::PermissionDenied
        );
        let garbled = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        assert_eq!(
            classify_handshake(garbled, &name()).class,
            NetError::Protocol
        );
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(classify_handshake(reset, &name()).class, NetError::Reset);
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert!(classify_handshake(eof, &name()).class.is_retryable());
    }
}
