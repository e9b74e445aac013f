//! Unit tests for zone building.
use super::*;

fn spec() -> ZoneSpec {
    ZoneSpec {
        domain: "openclaw.internal".into(),
        instance: "studio-gateway".into(),
        host: "studio".into(),
        port: 18789,
        srv_target: None,
        txt: vec![
            ("displayName".into(), "Studio \"A\"".into()),
            ("role".into(), "gateway".into()),
        ],
        v4: "100.101.102.103".parse().expect("lit"),
        v6: vec!["fd7a:115c:a1e0::1234".parse().expect("lit")],
    }
}

#[test]
fn renders_openclaw_layout() {
    let t = render(&spec(), Some(2026112401));
    let expected = "\
$ORIGIN openclaw.internal.
$TTL 60
@ IN SOA ns1 hostmaster 2026112401 7200 3600 1209600 60
@ IN NS ns1
ns1 IN A 100.101.102.103
studio IN A 100.101.102.103
studio IN AAAA fd7a:115c:a1e0::1234
_openclaw-gw._tcp IN PTR studio-gateway._openclaw-gw._tcp
studio-gateway._openclaw-gw._tcp IN SRV 0 0 18789 studio
studio-gateway._openclaw-gw._tcp IN TXT \"displayName=Studio \\\"A\\\"\" \"role=gateway\"
";
    assert_eq!(t, expected);
}

#[test]
fn quoting_and_hash() {
    assert_eq!(quote_txt("a\\b\u{1}"), "\"a\\\\b\\001\"");
    assert_eq!(fnv1a_hex(""), "811c9dc5");
    assert_eq!(fnv1a_hex("a"), "e40c292c");
}

#[test]
fn dates_and_serials() {
    assert_eq!(yyyymmdd(0), 19700101);
    assert_eq!(yyyymmdd(1_795_478_400), 20261124); // 2026-11-24T00:00:00Z
    assert_eq!(yyyymmdd(951_782_400), 20000229);
    assert_eq!(next_serial(None, 20261124), 2026112401);
    assert_eq!(next_serial(Some(2026112401), 20261124), 2026112402);
    assert_eq!(next_serial(Some(2026112499), 20261124), 2026112499);
    assert_eq!(next_serial(Some(2026112305), 20261124), 2026112401);
    assert_eq!(next_serial(Some(2026112505), 20261124), 2026112506);
}

#[test]
fn rewrites_only_on_content_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = 1_795_478_400 + 3600;
    let w1 = write_if_changed(dir.path(), &spec(), now).expect("write");
    assert!(w1.changed);
    assert_eq!(w1.serial, 2026112401);
    assert_eq!(w1.path, dir.path().join("dns/openclaw.internal.db"));
    let text = std::fs::read_to_string(&w1.path).expect("read");
    assert!(text.starts_with("; openclaw-content-hash: "));
    let w2 = write_if_changed(dir.path(), &spec(), now + 10).expect("write");
    assert!(!w2.changed);
    assert_eq!(w2.serial, w1.serial);
    let mut changed = spec();
    changed.port = 18790;
    let w3 = write_if_changed(dir.path(), &changed, now + 20).expect("write");
    assert!(w3.changed);
    assert_eq!(w3.serial, 2026112402);
}

#[test]
fn a_secure_route_moves_the_srv_to_the_magicdns_name() {
    let mut z = spec();
    z.port = 443;
    z.srv_target = Some("vienna.tail1234.ts.net".into());
    let text = render(&z, Some(2026120401));
    assert!(
        text.contains("studio-gateway._openclaw-gw._tcp IN SRV 0 0 443 vienna.tail1234.ts.net.\n"),
        "{text}"
    );
    let (_, map) = super::super::server::build_records(&z, 1).expect("records");
    let srv = map
        .values()
        .flat_map(|rs| rs.records_without_rrsigs())
        .find_map(|r| match &r.data {
            hickory_proto::rr::RData::SRV(s) => Some(s.clone()),
            _ => None,
        })
        .expect("srv");
    assert_eq!(srv.port, 443);
    assert_eq!(srv.target.to_ascii(), "vienna.tail1234.ts.net.");
}

#[test]
fn only_ldh_names_may_become_srv_targets() {
    assert!(ldh_fqdn("vienna.tail1234.ts.net"));
    for bad in [
        "vienna",
        "Vienna.ts.net",
        "vienna.ts.net.",
        "-x.ts.net",
        "a b.ts.net",
        "x.ts.net\n@ IN NS evil",
        "a..ts.net",
        "x_y.ts.net",
    ] {
        assert!(!ldh_fqdn(bad), "{bad:?}");
    }
}
