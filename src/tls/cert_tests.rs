use std::os::unix::fs::PermissionsExt;

use super::*;

fn settings(dir: &Path) -> TlsSettings {
    TlsSettings {
        cert_path: dir.join("tls/gateway-cert.pem"),
        key_path: dir.join("tls/gateway-key.pem"),
        ca_path: None,
        auto_generate: true,
    }
}

fn names() -> Names {
    Names {
        dns: vec!["localhost".into(), "gw.tail1234.ts.net".into()],
        ips: vec!["127.0.0.1".parse().unwrap(), "100.64.0.7".parse().unwrap()],
    }
}

fn spki(path: &Path) -> Vec<u8> {
    let der = read_chain(path).unwrap().remove(0);
    let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
    c.public_key().raw.to_vec()
}

#[test]
fn generates_p256_with_sans_mode_0600_and_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let t = settings(dir.path());
    let (first, created) = ensure(&t, &names()).unwrap();
    assert!(created);
    assert_eq!(first.fingerprint.len(), 64);
    assert!(first
        .fingerprint
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    for p in [&t.cert_path, &t.key_path] {
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
    let der = read_chain(&t.cert_path).unwrap().remove(0);
    let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
    let san = c.subject_alternative_name().unwrap().unwrap().value;
    let text = format!("{:?}", san.general_names);
    for want in [
        "localhost",
        "gw.tail1234.ts.net",
        "[127, 0, 0, 1]",
        "[100, 64, 0, 7]",
    ] {
        assert!(text.contains(want), "{want} missing in {text}");
    }
    assert!(c
        .public_key()
        .algorithm
        .algorithm
        .to_id_string()
        .starts_with("1.2.840.10045.2.1"));
    // Other addresses later: the existing certificate is kept, not re-issued.
    let other = Names {
        dns: vec!["elsewhere".into()],
        ips: vec!["10.9.9.9".parse().unwrap()],
    };
    let (again, created) = ensure(&t, &other).unwrap();
    assert!(!created);
    assert_eq!(again.fingerprint, first.fingerprint);
}

#[test]
fn rotate_changes_the_leaf_and_keeps_the_key_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let t = settings(dir.path());
    let (first, _) = ensure(&t, &names()).unwrap();
    let key_before = spki(&t.cert_path);
    let r = rotate(&t, &names(), false).unwrap();
    assert_eq!(r.old.as_deref(), Some(first.fingerprint.as_str()));
    assert_ne!(r.new, first.fingerprint);
    assert!(!r.new_key);
    assert_eq!(spki(&t.cert_path), key_before, "SPKI survives a rotation");
    let r2 = rotate(&t, &names(), true).unwrap();
    assert!(r2.new_key);
    assert_ne!(spki(&t.cert_path), key_before);
    assert_eq!(load(&t).unwrap().fingerprint, r2.new);
}

#[test]
fn a_mismatched_pair_and_garbage_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = settings(&dir.path().join("a"));
    let b = settings(&dir.path().join("b"));
    ensure(&a, &names()).unwrap();
    ensure(&b, &names()).unwrap();
    let crossed = TlsSettings {
        key_path: b.key_path.clone(),
        ..a.clone()
    };
    assert!(
        matches!(load(&crossed), Err(TlsError::Mismatch(_))),
        "{:?}",
        load(&crossed).err()
    );
    std::fs::write(&a.cert_path, "not pem").unwrap();
    let e = load(&a).unwrap_err().to_string();
    assert!(e.contains("gateway-cert.pem"), "{e}");
}

#[test]
fn missing_pair_without_auto_generate_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let t = TlsSettings {
        auto_generate: false,
        ..settings(dir.path())
    };
    assert!(matches!(ensure(&t, &names()), Err(TlsError::Missing(_))));
    assert!(!t.cert_path.exists());
}

#[test]
fn civil_dates() {
    assert_eq!(civil(0), (1970, 1, 1));
    assert_eq!(civil(19_723), (2024, 1, 1));
    assert_eq!(civil(19_782), (2024, 2, 29));
}

#[test]
fn a_san_less_certificate_is_upgraded_with_its_key_and_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let t = settings(dir.path());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "openclaw-gateway");
    let cn_only = p.self_signed(&key).unwrap();
    std::fs::create_dir_all(t.cert_path.parent().unwrap()).unwrap();
    std::fs::write(&t.cert_path, cn_only.pem()).unwrap();
    std::fs::write(&t.key_path, key.serialize_pem()).unwrap();
    let spki_before = spki(&t.cert_path);
    assert!(!has_sans(&t.cert_path));
    let (loaded, upgraded) = ensure(&t, &names()).unwrap();
    assert!(upgraded);
    assert!(has_sans(&t.cert_path));
    assert_eq!(spki(&t.cert_path), spki_before, "the key is kept");
    let backup = t.cert_path.with_extension("pem.san-less.bak");
    assert_eq!(std::fs::read_to_string(backup).unwrap(), cn_only.pem());
    assert_eq!(loaded.fingerprint, leaf_fingerprint(&t.cert_path).unwrap());
    // With SANs now, the next start keeps it.
    assert!(!ensure(&t, &names()).unwrap().1);
    // A configured pair that is not auto-generated is never touched.
    std::fs::write(&t.cert_path, cn_only.pem()).unwrap();
    let own = TlsSettings {
        auto_generate: false,
        ..t.clone()
    };
    assert!(!ensure(&own, &names()).unwrap().1);
    assert!(!has_sans(&t.cert_path));
}
