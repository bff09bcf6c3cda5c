//! The TLS flags of `redial pipe` (`src/tls_args.rs`), compiled and tested on their own until
//! the pipe wires them in: parsing, the typed errors for missing files and bad PEM, and the
//! connector they make.

#[allow(dead_code)] // The binary uses the module; this test exercises part of it directly.
#[path = "../src/tls_args.rs"]
mod tls_args;

use std::path::PathBuf;

use clap::Parser;
use tls_args::{Greeting, Handshake, PipeConnector, TlsArgs, TlsArgsError};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    tls: TlsArgs,
}

fn parse(args: &[&str]) -> Result<TlsArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("redial").chain(args.iter().copied())).map(|c| c.tls)
}

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(tag: &str) -> Files {
        let dir = std::env::temp_dir().join(format!("redial-cli-tls-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .signed_by(&key, &ca_cert, &ca_key)
            .unwrap();
        let f = Files { dir };
        std::fs::write(f.path("ca.crt"), ca_cert.pem()).unwrap();
        std::fs::write(f.path("client.crt"), cert.pem()).unwrap();
        std::fs::write(f.path("client.key"), key.serialize_pem()).unwrap();
        std::fs::write(f.path("junk.pem"), "not PEM at all\n").unwrap();
        f
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    fn arg(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn no_flags_is_plain_tcp() {
    let args = parse(&[]).unwrap();
    assert!(!args.enabled());
    assert!(matches!(
        args.connector(Handshake::Immediate).unwrap(),
        PipeConnector::Plain(_)
    ));
}

#[test]
fn flags_make_a_tls_connector() {
    let f = Files::new("ok");
    let args = parse(&[
        "--ca",
        &f.arg("ca.crt"),
        "--cert",
        &f.arg("client.crt"),
        "--key",
        &f.arg("client.key"),
        "--server-name",
        "db.internal",
    ])
    .unwrap();
    assert!(args.enabled(), "--ca implies --tls");
    let c = args.connector(Handshake::Immediate).unwrap();
    let PipeConnector::Tls(tls) = &c else {
        panic!("TLS expected: {c:?}");
    };
    assert_eq!(
        tls.settings()
            .server_name()
            .map(|n| n.to_str().into_owned()),
        Some("db.internal".to_owned())
    );
    let key = std::fs::read_to_string(f.path("client.key")).unwrap();
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(
        !format!("{c:?} {args:?}").contains(&body[..32]),
        "no key in Debug"
    );
    assert!(matches!(
        parse(&["--tls"])
            .unwrap()
            .connector(Handshake::AfterGreeting(Greeting::default()))
            .unwrap(),
        PipeConnector::Tls(_)
    ));
    let insecure = parse(&["--insecure-skip-verify"]).unwrap();
    assert!(insecure.enabled());
    assert!(insecure
        .tls_connector(Handshake::Immediate)
        .unwrap()
        .is_some());
}

#[test]
fn typed_errors_for_missing_files_and_bad_pem() {
    let f = Files::new("bad");
    let e = parse(&["--ca", &f.arg("nope.crt")])
        .unwrap()
        .connector(Handshake::Immediate)
        .unwrap_err();
    assert!(
        matches!(&e, TlsArgsError::MissingFile { flag: "--ca", .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("nope.crt: no such file"), "{e}");

    let e = parse(&["--ca", &f.arg("junk.pem")])
        .unwrap()
        .connector(Handshake::Immediate)
        .unwrap_err();
    assert!(
        e.to_string().contains("bad PEM in CA file") && e.to_string().contains("junk.pem"),
        "{e}"
    );

    let e = parse(&[
        "--tls",
        "--cert",
        &f.arg("client.crt"),
        "--key",
        &f.arg("junk.pem"),
    ])
    .unwrap()
    .connector(Handshake::Immediate)
    .unwrap_err();
    assert!(e.to_string().contains("bad PEM in client key"), "{e}");

    let e = parse(&[
        "--tls",
        "--cert",
        &f.arg("client.crt"),
        "--key",
        &f.arg("gone.key"),
    ])
    .unwrap()
    .connector(Handshake::Immediate)
    .unwrap_err();
    assert!(
        matches!(&e, TlsArgsError::MissingFile { flag: "--key", .. }),
        "{e:?}"
    );

    let e = parse(&["--server-name", "not a name!"])
        .unwrap()
        .connector(Handshake::Immediate)
        .unwrap_err();
    assert!(e.to_string().contains("invalid tls server name"), "{e}");

    assert!(
        parse(&["--cert", &f.arg("client.crt")]).is_err(),
        "--cert needs --key"
    );
    assert!(
        parse(&["--key", &f.arg("client.key")]).is_err(),
        "--key needs --cert"
    );
}
