//! A rustls config per attempt: fixed, reloaded when its files change, or the user's own.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::ClientConfig;

use crate::error::TlsError;
use crate::options::TlsOptions;

/// Called at every connection attempt for the config of that attempt's handshake: return a
/// new `Arc<ClientConfig>` and the next attempt uses it (certificate rotation without a
/// restart). Return the same `Arc` while nothing changed, so TLS session resumption, which
/// lives in the config, keeps working.
///
/// It runs on the session's task: keep it quick (a lookup, reading a small file), never
/// block on the network. An error fails that attempt (retryable: the next attempt asks again).
pub type ConfigProvider = Arc<dyn Fn() -> Result<Arc<ClientConfig>, TlsError> + Send + Sync>;

/// A provider that always returns `config`.
pub fn fixed(config: Arc<ClientConfig>) -> ConfigProvider {
    Arc::new(move || Ok(Arc::clone(&config)))
}

/// The files' contents (`None`: unreadable): what a config was built from. Contents, not
/// modification times: two versions written within one clock tick of the file system, with
/// the same length, would look alike by `stat`. The files are small and attempts rare.
type Snapshot = Vec<Option<Vec<u8>>>;

fn snapshot(files: &[PathBuf]) -> Snapshot {
    files.iter().map(|f| std::fs::read(f).ok()).collect()
}

/// A provider that builds `options` now (so a bad file is an error here, before any session
/// runs) and again whenever the contents of one of its files ([`TlsOptions::files`]) change:
/// replace the CA file or the client certificate and key, and the next attempt uses them. At
/// every attempt it reads those files (a few KiB) to compare; while they are unchanged it
/// returns the same config, so session resumption keeps working.
///
/// A rebuild that fails (a file half-written mid-rotation) fails that attempt, and the
/// next attempt tries again.
///
/// # Errors
/// As [`TlsOptions::build`].
pub fn reloading(options: TlsOptions) -> Result<ConfigProvider, TlsError> {
    let files = options.files();
    let first = snapshot(&files);
    let config = options.build()?;
    let current = Mutex::new((first, config));
    Ok(Arc::new(move || {
        let now = snapshot(&files);
        let mut current = current.lock().unwrap_or_else(|p| p.into_inner());
        if current.0 != now {
            let config = options.build()?;
            *current = (now, config);
        }
        Ok(Arc::clone(&current.1))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.self_signed(&key).expect("CA").pem()
    }

    #[test]
    fn reloads_when_the_file_changes_and_only_then() {
        let dir = std::env::temp_dir().join(format!("redial-tls-provider-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ca = dir.join("ca.crt");
        std::fs::write(&ca, ca_pem()).expect("write");
        let provider = reloading(TlsOptions::ca_file(&ca)).expect("builds");
        let first = provider().expect("config");
        assert!(
            Arc::ptr_eq(&first, &provider().expect("config")),
            "unchanged: same config"
        );
        let tmp = dir.join("ca.new");
        std::fs::write(&tmp, ca_pem() + &ca_pem()).expect("write");
        std::fs::rename(&tmp, &ca).expect("rotate");
        let second = provider().expect("rebuilt");
        assert!(!Arc::ptr_eq(&first, &second), "a new file, a new config");
        std::fs::write(&ca, "junk").expect("write");
        let e = provider().expect_err("bad PEM fails the attempt");
        assert!(e.to_string().contains("bad PEM in CA file"), "{e}");
        std::fs::write(&ca, ca_pem()).expect("write");
        assert!(provider().is_ok(), "the next attempt tries again");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(
            reloading(TlsOptions::ca_file(dir.join("gone.crt"))),
            Err(TlsError::Read { .. })
        ));
    }
}
