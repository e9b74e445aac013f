//! Pure pairing state-machine tests, including property tests.

use super::*;

struct Seq(u32);
impl Entropy for Seq {
    fn request_id(&mut self) -> String {
        self.0 += 1;
        format!("req-{}", self.0)
    }
    fn token(&mut self) -> String {
        self.0 += 1;
        format!("tok-{}", self.0)
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn conn(id: &str, role: &str, scopes: &[&str]) -> DeviceConnect {
    DeviceConnect {
        device_id: id.into(),
        public_key: format!("pk-{id}"),
        role: role.into(),
        scopes: s(scopes),
        meta: ClientMeta {
            platform: Some("linux".into()),
            ..Default::default()
        },
    }
}

fn admin() -> Caller {
    Caller {
        scopes: s(&["operator.admin"]),
        device_id: None,
        via_device_token: false,
    }
}

#[test]
fn not_paired_then_approved_then_paired() {
    let (mut d, mut e) = (PairingData::default(), Seq(0));
    let c = conn("d1", "node", &[]);
    assert_eq!(d.evaluate(&c), Some(Reason::NotPaired));
    let (r, new) = d
        .request(&c, Reason::NotPaired, false, 1000, &mut e)
        .unwrap();
    assert!(new);
    let (_, dev) = d
        .approve(&r.request_id, Some(&admin()), 2000, &mut e)
        .unwrap();
    assert_eq!(dev.roles, ["node"]);
    assert_eq!(d.evaluate(&c), None);
    let tok = dev.tokens["node"].token.clone();
    assert_eq!(
        d.check_device_token("d1", "pk-d1", "node", &tok, &[]),
        TokenCheck::Valid
    );
    assert_eq!(
        d.check_device_token("d1", "pk-d1", "node", "wrong", &[]),
        TokenCheck::Mismatch
    );
    assert_eq!(
        d.check_device_token("d1", "other-key", "node", &tok, &[]),
        TokenCheck::Mismatch
    );
}

#[test]
fn retries_refresh_one_request_and_changes_supersede() {
    let (mut d, mut e) = (PairingData::default(), Seq(0));
    let c = conn("d1", "operator", &["operator.read"]);
    let (r1, new1) = d
        .request(&c, Reason::NotPaired, true, 1000, &mut e)
        .unwrap();
    for t in 0..50 {
        let (r, new) = d
            .request(&c, Reason::NotPaired, true, 1100 + t, &mut e)
            .unwrap();
        assert_eq!(
            (r.request_id.as_str(), new),
            (r1.request_id.as_str(), false)
        );
    }
    assert!(new1);
    assert_eq!(d.pending.len(), 1);
    let wider = conn("d1", "operator", &["operator.write"]);
    let (r2, new2) = d
        .request(&wider, Reason::NotPaired, false, 2000, &mut e)
        .unwrap();
    assert!(new2);
    assert_ne!(r2.request_id, r1.request_id);
    assert_eq!(d.pending.len(), 1, "superseded, not added");
    assert_eq!(r2.scopes, s(&["operator.write", "operator.read"]));
    assert!(!r2.silent);
}

#[test]
fn pending_expires_after_ttl() {
    let (mut d, mut e) = (PairingData::default(), Seq(0));
    let (r, _) = d
        .request(
            &conn("d1", "node", &[]),
            Reason::NotPaired,
            false,
            0,
            &mut e,
        )
        .unwrap();
    assert_eq!(
        d.approve(&r.request_id, Some(&admin()), PENDING_TTL_MS, &mut e)
            .unwrap_err(),
        PairingError::UnknownRequest
    );
}

#[test]
fn approval_is_bounded_by_the_callers_scopes() {
    let (mut d, mut e) = (PairingData::default(), Seq(0));
    let (r, _) = d
        .request(
            &conn("d1", "operator", &["operator.admin"]),
            Reason::NotPaired,
            false,
            0,
            &mut e,
        )
        .unwrap();
    let pairing_only = Caller {
        scopes: s(&["operator.pairing"]),
        device_id: None,
        via_device_token: false,
    };
    assert_eq!(
        d.approve(&r.request_id, Some(&pairing_only), 1, &mut e)
            .unwrap_err(),
        PairingError::CallerMissingScope("operator.admin".into())
    );
    let (rn, _) = d
        .request(
            &conn("n1", "node", &[]),
            Reason::NotPaired,
            false,
            0,
            &mut e,
        )
        .unwrap();
    assert!(matches!(
        d.approve(&rn.request_id, Some(&pairing_only), 1, &mut e),
        Err(PairingError::CallerMissingScope(_))
    ));
}

#[test]
fn silent_approval_never_grants_admin() {
    let (mut d, mut e) = (PairingData::default(), Seq(0));
    let c = conn("d1", "operator", &["operator.admin", "operator.read"]);
    let (r, _) = d.request(&c, Reason::NotPaired, true, 0, &mut e).unwrap();
    let (_, dev) = d.approve(&r.request_id, None, 1, &mut e).unwrap();
    assert_eq!(dev.approved_scopes, s(&["operator.read"]));
    assert_eq!(d.evaluate(&c), Some(Reason::ScopeUpgrade));
}

#[test]
fn role_and_metadata_upgrades() {
    let (mut d, mut e) = (PairingData::default(), Seq(0));
    let c = conn("d1", "node", &[]);
    let (r, _) = d.request(&c, Reason::NotPaired, false, 0, &mut e).unwrap();
    d.approve(&r.request_id, Some(&admin()), 1, &mut e).unwrap();
    assert_eq!(
        d.evaluate(&conn("d1", "operator", &[])),
        Some(Reason::RoleUpgrade)
    );
    let mut moved = c.clone();
    moved.meta.platform = Some(" LINUX ".into());
    assert_eq!(d.evaluate(&moved), None, "normalised metadata is equal");
    moved.meta.platform = Some("android".into());
    assert_eq!(d.evaluate(&moved), Some(Reason::MetadataUpgrade));
    d.update_metadata(&moved);
    assert_eq!(d.evaluate(&moved), None);
}

#[test]
fn rotation_cannot_mint_roles_or_foreign_scopes() {
    let (mut d, mut e) = (PairingData::default(), Seq(0));
    let (r, _) = d
        .request(
            &conn("d1", "operator", &["operator.read", "operator.write"]),
            Reason::NotPaired,
            false,
            0,
            &mut e,
        )
        .unwrap();
    d.approve(&r.request_id, Some(&admin()), 1, &mut e).unwrap();
    let pairing = Caller {
        scopes: s(&["operator.pairing"]),
        device_id: None,
        via_device_token: false,
    };
    assert!(matches!(
        d.rotate(
            "d1",
            "operator",
            Some(&s(&["operator.admin"])),
            &pairing,
            2,
            &mut e
        ),
        Err(PairingError::CallerMissingScope(_))
    ));
    assert!(
        matches!(
            d.rotate(
                "d1",
                "operator",
                Some(&s(&["operator.admin"])),
                &admin(),
                2,
                &mut e
            ),
            Err(PairingError::CallerMissingScope(_))
        ),
        "not within approved scopes"
    );
    assert_eq!(
        d.rotate("d1", "node", None, &admin(), 2, &mut e)
            .unwrap_err(),
        PairingError::RoleNotApproved("node".into())
    );
    let t = d
        .rotate(
            "d1",
            "operator",
            Some(&s(&["operator.read"])),
            &admin(),
            3,
            &mut e,
        )
        .unwrap();
    assert_eq!(t.scopes, s(&["operator.read"]));
    let other = Caller {
        scopes: s(&["operator.pairing"]),
        device_id: Some("d2".into()),
        via_device_token: true,
    };
    assert_eq!(
        d.revoke("d1", "operator", &other, 4).unwrap_err(),
        PairingError::NotOwnDevice
    );
    d.revoke("d1", "operator", &admin(), 4).unwrap();
    assert_eq!(
        d.check_device_token("d1", "pk-d1", "operator", &t.token, &[]),
        TokenCheck::Mismatch
    );
    assert_eq!(
        d.evaluate(&conn("d1", "operator", &[])),
        Some(Reason::RoleUpgrade),
        "revoked role is not effective"
    );
}

#[test]
fn bootstrap_is_single_use_and_bound() {
    let (mut d, mut e) = (PairingData::default(), Seq(0));
    let profile = BootstrapProfile {
        roles: s(&["node", "operator"]),
        scopes: s(&["operator.read", "operator.admin"]),
    };
    let (tok, exp) = d.issue_bootstrap(profile, 0, &mut e);
    assert_eq!(exp, BOOTSTRAP_TTL_MS);
    assert!(
        d.bootstrap.iter().all(|b| b.token_sha256 != tok),
        "only the hash is stored"
    );
    assert!(
        d.redeem_bootstrap(&tok, "d1", "pk-d1", BOOTSTRAP_TTL_MS)
            .is_none(),
        "expired"
    );
    let (tok, _) = d.issue_bootstrap(
        BootstrapProfile {
            roles: s(&["node"]),
            scopes: vec![],
        },
        0,
        &mut e,
    );
    assert!(d.redeem_bootstrap(&tok, "d1", "pk-d1", 1).is_some());
    assert!(
        d.redeem_bootstrap(&tok, "d1", "pk-d1", 2).is_none(),
        "never revived"
    );
    assert!(d.redeem_bootstrap(&tok, "d2", "pk-d2", 2).is_none());
    let (tok, _) = d.issue_bootstrap(
        BootstrapProfile {
            roles: s(&["node", "operator"]),
            scopes: s(&["operator.admin", "operator.read"]),
        },
        0,
        &mut e,
    );
    let p = d.redeem_bootstrap(&tok, "d3", "pk-d3", 1).unwrap();
    let dev = d.approve_bootstrap(&conn("d3", "node", &[]), &p, 1, &mut e);
    assert_eq!(
        dev.approved_scopes,
        s(&["operator.read"]),
        "bootstrap never grants admin"
    );
    assert!(dev.tokens.contains_key("node") && dev.tokens.contains_key("operator"));
}

#[test]
fn node_surface_gating() {
    let (mut d, mut e) = (PairingData::default(), Seq(0));
    let cmds = s(&["system.which", "camera.snap"]);
    let (eff, req) = d.reconcile_node("n1", &cmds, &[], None, 0, &mut e);
    assert!(eff.is_empty(), "nothing runs before approval");
    let (req, new) = req.unwrap();
    assert!(new);
    assert_eq!(
        req.required_approve_scopes,
        s(&["operator.pairing", "operator.admin"])
    );
    let (_, again) = d.reconcile_node("n1", &cmds, &[], None, 10, &mut e);
    assert_eq!(
        again.unwrap(),
        (
            NodeRequest {
                ts: 10,
                ..req.clone()
            },
            false
        )
    );
    let writer = Caller {
        scopes: s(&["operator.pairing", "operator.write"]),
        device_id: None,
        via_device_token: false,
    };
    assert!(d.approve_node(&req.request_id, &writer, 20).is_err());
    d.approve_node(&req.request_id, &admin(), 20).unwrap();
    let (eff, req) = d.reconcile_node("n1", &cmds, &[], None, 30, &mut e);
    assert_eq!((eff, req), (cmds.clone(), None));
    let (eff, req) = d.reconcile_node(
        "n1",
        &s(&["system.which", "system.run"]),
        &[],
        None,
        40,
        &mut e,
    );
    assert_eq!(eff, s(&["system.which"]));
    assert!(req.is_some(), "a wider surface asks again");
}

#[test]
fn setup_code_pairing_approves_the_first_node_surface_once() {
    let (mut d, mut e) = (PairingData::default(), Seq(0));
    let profile = BootstrapProfile {
        roles: s(&["node", "operator"]),
        scopes: s(&["operator.read"]),
    };
    let (tok, _) = d.issue_bootstrap(profile, 0, &mut e);
    let p = d.redeem_bootstrap(&tok, "d1", "pk-d1", 1).unwrap();
    d.approve_bootstrap(&conn("d1", "node", &[]), &p, 1, &mut e);
    let first = s(&["system.which", "system.run"]);
    let (eff, req) = d.reconcile_node("d1", &first, &s(&["system"]), None, 2, &mut e);
    assert_eq!((eff, req), (first.clone(), None), "invocable at once");
    assert!(d.bootstrap_surfaces.is_empty(), "one-shot");
    let wider = s(&["system.which", "system.run", "fs.listDir"]);
    let (eff, req) = d.reconcile_node("d1", &wider, &s(&["system"]), None, 3, &mut e);
    assert_eq!(eff, first, "a widened surface is not auto-approved");
    assert!(req.is_some());
    // Forgetting the surface does not re-arm the code's approval.
    d.remove_node("d1").unwrap();
    let (eff, req) = d.reconcile_node("d1", &first, &[], None, 4, &mut e);
    assert!(eff.is_empty() && req.is_some(), "{eff:?}");
    // An operator-approved device gets no such grant.
    let c = conn("d2", "node", &[]);
    let (r, _) = d.request(&c, Reason::NotPaired, false, 5, &mut e).unwrap();
    d.approve(&r.request_id, Some(&admin()), 6, &mut e).unwrap();
    let (eff, _) = d.reconcile_node("d2", &first, &[], None, 7, &mut e);
    assert!(eff.is_empty());
}

proptest::proptest! {
    /// Whatever sequence of retries and scope changes, a device never has more than one pending request.
    #[test]
    fn one_live_request_per_device(ops in proptest::collection::vec((0u8..3, 0u8..3), 1..60)) {
        let (mut d, mut e) = (PairingData::default(), Seq(0));
        let all = ["operator.read", "operator.write", "operator.approvals"];
        for (i, (dev, scope)) in ops.iter().enumerate() {
            let c = conn(&format!("d{dev}"), "operator", &all[..=*scope as usize]);
            d.request(&c, Reason::NotPaired, false, i as i64, &mut e).unwrap();
            for dev in 0..3 {
                let n = d.pending.values().filter(|r| r.device_id == format!("d{dev}")).count();
                proptest::prop_assert!(n <= 1);
            }
        }
    }
}

#[test]
fn pending_requests_are_capped_per_source() {
    let (mut d, mut e) = (PairingData::default(), Seq(0));
    let from = |n: usize| {
        let mut c = conn(&format!("flood{n}"), "node", &[]);
        c.meta.remote_ip = Some("10.0.0.66".into());
        c
    };
    for n in 0..MAX_PENDING_PER_SOURCE {
        d.request(&from(n), Reason::NotPaired, false, 0, &mut e)
            .unwrap();
    }
    assert_eq!(
        d.request(&from(99), Reason::NotPaired, false, 0, &mut e)
            .unwrap_err(),
        PairingError::TooManyPending
    );
    // A device that already has a request keeps refreshing it; other sources are unaffected.
    assert!(d
        .request(&from(0), Reason::NotPaired, false, 1, &mut e)
        .is_ok());
    assert!(d
        .request(
            &conn("elsewhere", "node", &[]),
            Reason::NotPaired,
            false,
            1,
            &mut e
        )
        .is_ok());
}

#[test]
fn silent_approval_rule() {
    let ctx = |direct_local, auto_approve_local, shared_or_none| SilentContext {
        direct_local,
        auto_approve_local,
        shared_or_none,
    };
    assert!(silent_approval(ctx(true, true, true), Reason::NotPaired));
    assert!(silent_approval(ctx(true, true, false), Reason::RoleUpgrade));
    assert!(
        !silent_approval(ctx(false, true, true), Reason::NotPaired),
        "remote or proxied: never"
    );
    assert!(
        !silent_approval(ctx(true, false, true), Reason::NotPaired),
        "autoApproveLocal=false"
    );
    assert!(silent_approval(
        ctx(true, false, true),
        Reason::MetadataUpgrade
    ));
    assert!(
        !silent_approval(ctx(true, true, false), Reason::ScopeUpgrade),
        "device-token scope upgrades need an operator"
    );
    assert!(silent_approval(ctx(true, true, true), Reason::ScopeUpgrade));
}
