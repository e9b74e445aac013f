//! Tailscale-first exposure end to end on the offline tailnet (issue 5 §8): the real `clawgate`
//! binary drives london's LocalAPI (attached as a sidecar), claims its Serve/Funnel route, and
//! real tailnet peers reach it: vienna over `wss://london.<magicdns>` with HTTP/1.1-only and
//! h2-capable TLS clients, the tagged node, a Funnel client through the ingress node, and forged
//! identity headers on the ordinary loopback listener.

mod common;

use std::time::Duration;

use common::testnet::{self, Testnet};
use common::{call, next, send, Device, TOKEN};
use serde_json::{json, Value};

/// Bound on a whole test.
const BOUND: Duration = Duration::from_secs(120);
/// How long the route may take to be claimed after start.
const CLAIM: Duration = Duration::from_secs(20);

const OPERATOR: (&str, &str) = ("cli", "cli");

fn code(res: &Value) -> String {
    res["error"]["details"]["code"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn vienna_pairs_over_wss_with_http1_and_h2_clients_and_identity_is_never_forged() {
    common::bounded(BOUND, async {
        let Some(net) = Testnet::start(&[]).await else {
            return;
        };
        let gw = common::attached_gateway(&net, "serve", json!({}), &["--token", TOKEN]);
        let exp = testnet::wait_exposure(gw.port, "ok", CLAIM).await;
        let fqdn = net.node("london").fqdn.clone();
        assert_eq!(exp["publicUrl"], format!("wss://{fqdn}"), "{exp}");

        // First contact from vienna: Tailscale identity authenticates, but the device must pair.
        let d = Device::new();
        let (mut ws, alpn) = testnet::wss_from(&net, "vienna", "london", &[], &[])
            .await
            .unwrap();
        assert_eq!(alpn, None);
        let res = common::signed_operator(&mut ws, &d, json!({})).await;
        assert_eq!(
            code(&res),
            "PAIRING_REQUIRED",
            "not silent over Serve: {res}"
        );
        let rid = res["error"]["details"]["requestId"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut admin = common::operator(&gw, &["operator.admin", "operator.pairing"]).await;
        let r = call(
            &mut admin,
            "a1",
            "device.pair.approve",
            json!({"requestId": rid}),
        )
        .await;
        assert_eq!(r["ok"], true, "{r}");

        // Paired: HTTP/1.1-only and h2-capable clients both get hello-ok and call health.
        for offer in [&[][..], &["h2", "http/1.1"][..]] {
            let (mut ws, alpn) = testnet::wss_from(&net, "vienna", "london", offer, &[])
                .await
                .unwrap();
            assert_ne!(
                alpn.as_deref(),
                Some(&b"h2"[..]),
                "TLS-terminated forward never negotiates h2"
            );
            let res = common::signed_operator(&mut ws, &d, json!({})).await;
            assert_eq!(res["ok"], true, "{offer:?}: {res}");
            assert_eq!(res["payload"]["auth"]["method"], "tailscale", "{res}");
            let h = call(&mut ws, "h1", "health", json!({})).await;
            assert_eq!(h["ok"], true, "{h}");
        }

        // A tagged node carries no user identity: without a token it is refused.
        let (mut ws, _) = testnet::wss_from(&net, "tagged", "london", &[], &[])
            .await
            .unwrap();
        let res = common::signed_operator(&mut ws, &Device::new(), json!({})).await;
        assert_eq!(code(&res), "AUTH_TOKEN_MISSING", "{res}");

        // Forged identity headers on the ordinary loopback listener grant nothing.
        let login = net.node("vienna").login.clone();
        let vienna_ip = net.node("vienna").ips[0].to_string();
        let forged = [
            ("Tailscale-User-Login", login.as_str()),
            ("Tailscale-User-Name", "Vienna"),
            ("X-Forwarded-For", vienna_ip.as_str()),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", fqdn.as_str()),
        ];
        let mut ws = common::open(&gw.url(), &forged).await;
        let res = common::signed_operator(&mut ws, &d, json!({})).await;
        assert_eq!(code(&res), "AUTH_TOKEN_MISSING", "{res}");

        // Anything that is not tailscaled speaking PROXY v2 is dropped on the ingress listener.
        let ingress = exp["ingress"].as_str().unwrap().to_owned();
        let plain = common::try_open(
            &format!("ws://{ingress}"),
            &[("Tailscale-User-Login", login.as_str())],
        )
        .await;
        assert!(
            plain.is_none(),
            "ingress without a PROXY header must not upgrade"
        );
        net.stop().await;
    })
    .await;
}

#[tokio::test]
async fn funnel_needs_the_password_and_never_gets_tailnet_identity() {
    common::bounded(BOUND, async {
        let Some(net) = Testnet::start(&[]).await else {
            return;
        };
        let auth =
            json!({"auth": {"mode": "password", "password": common::FUNNEL_PASSWORD, "allowTailscale": true}});
        let gw = common::attached_gateway(&net, "funnel", auth, &[]);
        let exp = testnet::wait_exposure(gw.port, "ok", CLAIM).await;
        assert!(
            exp["publicUrl"]
                .as_str()
                .unwrap()
                .starts_with("wss://london."),
            "{exp}"
        );
        let login = net.node("vienna").login.clone();
        let headers = [
            ("Tailscale-User-Login", login.as_str()),
            ("Tailscale-Funnel-Request", "?0"),
        ];
        let d = Device::new();
        let (mut ws, _) = testnet::wss_funnel(&net, "london", &headers).await.unwrap();
        let res = common::signed_operator(&mut ws, &d, json!({})).await;
        assert_eq!(code(&res), "AUTH_PASSWORD_MISSING", "{res}");
        let (mut ws, _) = testnet::wss_funnel(&net, "london", &headers).await.unwrap();
        let res = common::signed_operator(&mut ws, &d, json!({"password": common::FUNNEL_PASSWORD})).await;
        // Authenticated by the password, never silently paired: Funnel is remote.
        assert_eq!(code(&res), "PAIRING_REQUIRED", "{res}");
        net.stop().await;
    })
    .await;
}

#[tokio::test]
async fn foreign_routes_are_never_touched_across_restarts_and_conflicts_are_reported() {
    common::bounded(BOUND, async {
        let Some(net) = Testnet::start(&[]).await else { return };
        let api = clawgate::tailscale::LocalApiClient::new(
            serde_json::from_value::<clawgate::tailscale::EndpointSpec>(net.node("london").localapi.clone())
                .unwrap()
                .to_endpoint()
                .unwrap(),
        );
        use clawgate::tailscale::LocalApi;
        let fqdn = net.node("london").fqdn.clone();
        let foreign = json!({"TCP": {"8443": {"HTTPS": true}}, "Web": {format!("{fqdn}:8443"): {"Handlers": {"/": {"Text": "foreign"}}}}});
        let foreign: clawgate::tailscale::ServeConfig = serde_json::from_value(foreign).unwrap();
        let (_, etag) = api.serve_config().await.unwrap();
        api.set_serve_config(&foreign, Some(&etag)).await.unwrap();
        for round in 0..10 {
            let gw = common::attached_gateway(&net, "serve", json!({}), &["--token", TOKEN]);
            testnet::wait_exposure(gw.port, "ok", CLAIM).await;
            let (now, _) = api.serve_config().await.unwrap();
            assert_eq!(now.foreground.len(), 1, "round {round}: exactly one clawgate entry");
            assert_eq!((now.tcp.clone(), now.web.clone()), (foreign.tcp.clone(), foreign.web.clone()), "round {round}");
            drop(gw); // SIGKILL: the Foreground entry dies with the IPN bus stream
        }
        // A foreign handler on 443 is a reported conflict, never overwritten.
        let mut on443 = foreign.clone();
        on443.tcp.insert("443".into(), on443.tcp["8443"].clone());
        on443.web.insert(format!("{fqdn}:443"), on443.web[&format!("{fqdn}:8443")].clone());
        let deadline = tokio::time::Instant::now() + CLAIM;
        loop {
            let (cur, etag) = api.serve_config().await.unwrap();
            if cur.foreground.is_empty() {
                api.set_serve_config(&on443, Some(&etag)).await.unwrap();
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "foreground entry outlived its gateway");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let gw = common::attached_gateway(&net, "serve", json!({}), &["--token", TOKEN]);
        let exp = testnet::wait_exposure(gw.port, "degraded", CLAIM).await;
        let deadline = tokio::time::Instant::now() + CLAIM;
        let mut exp = exp;
        while !exp["reason"].as_str().unwrap_or("").contains("conflict") {
            assert!(tokio::time::Instant::now() < deadline, "{exp}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            exp = testnet::readyz(gw.port).await["exposure"].clone();
        }
        assert!(exp["remedy"].as_str().unwrap().contains("443"), "{exp}");
        let (now, _) = api.serve_config().await.unwrap();
        assert_eq!(now, on443, "conflicting foreign route untouched");
        net.stop().await;
    })
    .await;
}

#[tokio::test]
async fn route_is_back_within_5s_after_the_sidecar_is_killed() {
    common::bounded(BOUND, async {
        let Some(tsnet) = testnet::tsnet_bin() else {
            eprintln!("SKIPPED: clawgate-tsnet not found (CLAWGATE_TSNET_BIN or make sidecar)");
            return;
        };
        let Some(net) = Testnet::start(&["--sidecar-node", "gw"]).await else {
            return;
        };
        let sc = &net.manifest.sidecars["gw"];
        let gw = common::own_sidecar_gateway(&net, "gw", &tsnet, serde_json::json!({}));
        testnet::wait_exposure(gw.port, "ok", Duration::from_secs(60)).await;
        common::assert_challenge(&net, "vienna", &sc.fqdn, &[]).await;

        let sidecar = common::daemon::children(gw.child.id());
        assert_eq!(sidecar.len(), 1, "one sidecar child: {sidecar:?}");
        let killed = tokio::time::Instant::now();
        std::process::Command::new("kill")
            .args(["-9", &sidecar[0].to_string()])
            .status()
            .unwrap();
        testnet::wait_exposure(gw.port, "degraded", Duration::from_secs(10)).await;
        testnet::wait_exposure(gw.port, "ok", Duration::from_secs(30)).await;
        let took = killed.elapsed();
        // `status` reports the supervised sidecar, its state and the restart.
        let mut op = common::operator(&gw, &["operator.read"]).await;
        let st = call(&mut op, "st", "status", json!({})).await;
        let src = &st["payload"]["tailscaleSource"];
        assert_eq!(
            (src["backend"].as_str(), src["state"].as_str()),
            (Some("sidecar"), Some("running")),
            "{st}"
        );
        assert!(src["restarts"].as_u64().unwrap() >= 1, "{st}");
        eprintln!("route restored {took:?} after the sidecar was killed");
        assert!(
            took <= Duration::from_secs(5),
            "route restored after {took:?} (target 5 s)"
        );
        // End to end: vienna re-learns the restarted node's endpoints, then connects again.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut ws = loop {
            match testnet::wss_to_name(&net, "vienna", &sc.fqdn, &["h2", "http/1.1"]).await {
                Ok((ws, _)) => break ws,
                Err(e) => assert!(tokio::time::Instant::now() < deadline, "{e}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        eprintln!(
            "wss from vienna works again {:?} after the kill",
            killed.elapsed()
        );
        assert_eq!(next(&mut ws).await["event"], "connect.challenge");
        drop(gw);
        net.stop().await;
    })
    .await;
}

/// Signed connect with explicit role/client/scopes over an open socket.
async fn signed_as<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    d: &Device,
    role: &str,
    client: (&str, &str),
    scopes: &[&str],
    auth: Value,
) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let ch = next(ws).await;
    let p = d.params(&ch, role, client, scopes, auth, json!({}));
    send(
        ws,
        json!({"type": "req", "id": "c1", "method": "connect", "params": p}),
    )
    .await;
    next(ws).await
}

#[tokio::test]
async fn a_phone_pairs_from_the_tailnet_with_a_magicdns_setup_code() {
    common::bounded(BOUND, async {
        let Some(net) = Testnet::start(&[]).await else {
            return;
        };
        let login = net.node("vienna").login.clone();
        let extra = json!({"auth": {"identityScopes": {login.clone(): ["operator.admin"]}}});
        let gw = common::attached_gateway(&net, "serve", extra, &["--token", TOKEN]);
        testnet::wait_exposure(gw.port, "ok", CLAIM).await;
        let fqdn = net.node("london").fqdn.clone();
        let mut adm = common::operator(&gw, &["operator.admin", "operator.pairing"]).await;
        let r = call(&mut adm, "q", "device.pair.setupCode", json!({})).await;
        assert_eq!(r["ok"], true, "{r}");
        let setup = r["payload"]["setupCode"].as_str().unwrap();
        let payload = clawgate::pairing::setup_code::decode(setup).unwrap();
        assert_eq!(
            payload.url,
            format!("wss://{fqdn}"),
            "the MagicDNS endpoint is the URL"
        );

        // The phone (on vienna's tailnet) redeems the bootstrap token over wss.
        let phone = Device::new();
        let auth = json!({"bootstrapToken": payload.bootstrap_token});
        let (mut ws, _) = testnet::wss_from(&net, "vienna", "london", &["h2", "http/1.1"], &[])
            .await
            .unwrap();
        let res = signed_as(
            &mut ws,
            &phone,
            "node",
            ("openclaw-android", "node"),
            &[],
            auth,
        )
        .await;
        assert_eq!(res["ok"], true, "{res}");
        assert_eq!(res["payload"]["auth"]["method"], "bootstrap-token");

        // identityScopes: vienna's login gets operator.admin for this connection only, without
        // the pairing record having to approve it.
        let laptop = Device::new();
        let scopes = ["operator.read", "operator.admin"];
        let (mut ws, _) = testnet::wss_from(&net, "vienna", "london", &[], &[])
            .await
            .unwrap();
        let res = signed_as(&mut ws, &laptop, "operator", OPERATOR, &scopes, json!({})).await;
        let rid = res["error"]["details"]["requestId"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            res["error"]["details"]["requestedScopes"],
            json!(["operator.read"]),
            "{res}"
        );
        let r = call(
            &mut adm,
            "a",
            "device.pair.approve",
            json!({"requestId": rid}),
        )
        .await;
        assert_eq!(r["ok"], true, "{r}");
        let (mut ws, _) = testnet::wss_from(&net, "vienna", "london", &[], &[])
            .await
            .unwrap();
        let res = signed_as(&mut ws, &laptop, "operator", OPERATOR, &scopes, json!({})).await;
        let granted = res["payload"]["auth"]["scopes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(granted.contains(&json!("operator.admin")), "{res}");
        // The tagged node has no login, so no identity scopes and no identity at all.
        let (mut ws, _) = testnet::wss_from(&net, "tagged", "london", &[], &[])
            .await
            .unwrap();
        let res = signed_as(&mut ws, &laptop, "operator", OPERATOR, &scopes, json!({})).await;
        assert_eq!(code(&res), "AUTH_TOKEN_MISSING", "{res}");
        net.stop().await;
    })
    .await;
}
