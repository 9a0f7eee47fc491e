//! Starting, addressing, observing, stopping, and running standalone.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use auth_emulator::{ClientConfig, Emulator, EmulatorError, Endpoint, Fault, demo};
use reqwest::StatusCode;
use support::*;

#[test]
fn emulator_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Emulator>();
}

#[tokio::test]
async fn base_url_and_endpoints() {
    let emu = start().await;
    let base = emu.base_url().as_str().to_owned();
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with('/'),
        "{base}"
    );
    assert_ne!(emu.base_url().port(), Some(0));
    let fitbit = emu.fitbit_endpoints();
    assert_eq!(fitbit.authorize.as_str(), format!("{base}oauth2/authorize"));
    assert_eq!(fitbit.token.as_str(), format!("{base}oauth2/token"));
    assert_eq!(
        fitbit.introspect.as_str(),
        format!("{base}1.1/oauth2/introspect")
    );
    assert_eq!(fitbit.revoke.as_str(), format!("{base}oauth2/revoke"));
    let google = emu.google_endpoints();
    assert_eq!(google.issuer.as_str(), base);
    assert_eq!(google.authorize.as_str(), format!("{base}o/oauth2/v2/auth"));
    assert_eq!(google.token.as_str(), format!("{base}token"));
    assert_eq!(google.revoke.as_str(), format!("{base}revoke"));
    assert_eq!(google.tokeninfo.as_str(), format!("{base}tokeninfo"));
    assert_eq!(
        google.discovery.as_str(),
        format!("{base}.well-known/openid-configuration")
    );
    assert!(format!("{emu:?}").contains(&base));
}

#[tokio::test]
async fn counters_and_last_request_observe_and_reset() {
    let emu = start().await;
    let http = http();
    assert_eq!(emu.last_request(Endpoint::GoogleRevoke), None);
    http.post(emu.google_endpoints().revoke)
        .header("X-Trace", "abc")
        .form(&[("token", "t 1")])
        .send()
        .await
        .expect("answered");
    let recorded = emu.last_request(Endpoint::GoogleRevoke).expect("recorded");
    assert_eq!(recorded.method, "POST");
    assert_eq!(recorded.path, "/revoke");
    assert_eq!(recorded.body, "token=t+1", "the raw form body");
    assert_eq!(recorded.header("x-trace"), Some("abc"));
    assert!(
        recorded
            .headers
            .iter()
            .any(|(n, v)| n == "x-trace" && v == "abc"),
        "names are lower case"
    );
    assert_eq!(emu.counters().google_revoke, 1);
    emu.reset_counters();
    assert_eq!(emu.counters(), auth_emulator::Counters::default());
}

#[tokio::test]
async fn dropping_the_emulator_stops_the_server() {
    let emu = start().await;
    let url = emu.google_endpoints().discovery;
    assert_eq!(
        http()
            .get(url.clone())
            .send()
            .await
            .expect("answered")
            .status(),
        StatusCode::OK
    );
    drop(emu);
    // Abort takes effect when the runtime next polls the server task.
    let mut refused = false;
    for _ in 0..1_000 {
        tokio::task::yield_now().await;
        if http().get(url.clone()).send().await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "the server still answers after drop");
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish() {
    let emu = start().await;
    let url = emu.google_endpoints().discovery;
    emu.inject(
        Endpoint::GoogleDiscovery,
        Fault::Delay(Duration::from_millis(200)),
        1,
    );
    let in_flight = tokio::spawn(http().get(url.clone()).send());
    // The request has arrived once it is counted.
    let mut arrived = false;
    for _ in 0..10_000 {
        if emu.counters().google_discovery == 1 {
            arrived = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(arrived, "the request reached the server");
    emu.shutdown().await;
    let response = in_flight
        .await
        .expect("joined")
        .expect("answered despite the shutdown");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        http().get(url).send().await.is_err(),
        "stopped after shutdown"
    );
}

#[tokio::test]
async fn a_port_in_use_is_a_bind_error() {
    let first = start().await;
    let port = first.base_url().port().expect("a port");
    let error = Emulator::builder()
        .port(port)
        .start()
        .await
        .expect_err("the port is taken");
    assert!(
        matches!(error, EmulatorError::Bind { port: p, .. } if p == port),
        "{error:?}"
    );
    assert!(error.to_string().contains(&port.to_string()));
    assert!(
        std::error::Error::source(&error).is_some(),
        "the OS error is kept as the source"
    );
}

#[tokio::test]
async fn an_invalid_redirect_uri_is_refused_at_start() {
    let error = Emulator::builder()
        .fitbit_client(ClientConfig::public("X").redirect_uri("not a url"))
        .start()
        .await
        .expect_err("invalid");
    assert!(
        matches!(error, EmulatorError::InvalidRedirectUri { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("not a url"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controls_work_while_requests_are_in_flight() {
    let emu = std::sync::Arc::new(start().await);
    let http = http();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let emu = std::sync::Arc::clone(&emu);
        let http = http.clone();
        tasks.push(tokio::spawn(async move {
            let user = format!("CONC{i:02}");
            let rt = emu
                .seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, &user, &[SLEEP])
                .refresh_token
                .expect("rt");
            let status = fitbit_refresh(&http, &emu, SERVER_APP, &rt).await.status();
            let _ = emu.counters();
            status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("joined"), StatusCode::OK);
    }
    assert_eq!(emu.counters().fitbit_token_refresh, 20);
}

#[tokio::test]
async fn seeding_an_unknown_client_panics_and_leaves_the_emulator_usable() {
    let emu = start().await;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        emu.seed_fitbit_grant("NOPE", "USER01", &[SLEEP])
    }));
    let message = outcome.expect_err("an unknown client panics");
    let text = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(text.contains("unknown Fitbit client"), "{text}");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        emu.seed_google_grant(demo::GOOGLE_CLIENT_ID, "USER01", &["sleep"])
    }));
    assert!(outcome.is_err(), "a legacy scope is not a Google scope");
    let tokens = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "USER01", &[SLEEP]);
    assert!(fitbit_active(&http(), &emu, &tokens.access_token).await);
}

#[tokio::test]
async fn default_user_is_configurable() {
    let emu = Emulator::builder()
        .with_demo_clients()
        .default_user("BOB123")
        .start()
        .await
        .expect("starts");
    let http = http();
    let pkce = pkce();
    let code = fitbit_code(&http, &emu, SERVER_APP, &pkce, SLEEP).await;
    let (_, body) =
        json(fitbit_exchange(&http, &emu, SERVER_APP, &code, &pkce.verifier).await).await;
    assert_eq!(body["user_id"], "BOB123");
}

#[tokio::test]
async fn token_lifetimes_are_configurable() {
    let emu = Emulator::builder()
        .with_demo_clients()
        .fitbit_access_token_lifetime(Duration::from_secs(60))
        .google_access_token_lifetime(Duration::from_secs(120))
        .start()
        .await
        .expect("starts");
    let fitbit = emu.seed_fitbit_grant(demo::FITBIT_SERVER_CLIENT_ID, "LIFE01", &[SLEEP]);
    let google = emu.seed_google_grant(demo::GOOGLE_CLIENT_ID, "LIFE02", &[HEALTH_SLEEP]);
    assert_eq!((fitbit.expires_in, google.expires_in), (60, 120));
    let http = http();
    assert!(fitbit_active(&http, &emu, &fitbit.access_token).await);
    emu.advance_time(Duration::from_secs(61));
    assert!(!fitbit_active(&http, &emu, &fitbit.access_token).await);
}

#[test]
fn standalone_binary_prints_its_address_and_demo_credentials() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_auth-emulator"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line");
        let done = line.contains("Ctrl-C");
        lines.push(line);
        if done {
            break;
        }
    }
    let text = lines.join("\n");
    let base = lines
        .first()
        .and_then(|l| l.rsplit(' ').next())
        .expect("the first line ends with the base URL")
        .to_owned();
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            reqwest::get(format!("{base}.well-known/openid-configuration"))
                .await
                .map(|r| r.status())
        });
    let _ = child.kill();
    let _ = child.wait();
    assert!(base.starts_with("http://127.0.0.1:"), "{text}");
    for needle in [
        demo::FITBIT_SERVER_CLIENT_ID,
        demo::FITBIT_SERVER_CLIENT_SECRET,
        demo::FITBIT_PUBLIC_CLIENT_ID,
        demo::GOOGLE_CLIENT_ID,
        demo::GOOGLE_CLIENT_SECRET,
        demo::REDIRECT_URI,
    ] {
        assert!(text.contains(needle), "missing {needle}: {text}");
    }
    assert_eq!(answer.expect("the printed URL serves"), StatusCode::OK);
}

#[test]
fn standalone_binary_rejects_bad_arguments() {
    let status = Command::new(env!("CARGO_BIN_EXE_auth-emulator"))
        .args(["--port", "not-a-port"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("runs");
    assert_eq!(status.code(), Some(2));
    let help = Command::new(env!("CARGO_BIN_EXE_auth-emulator"))
        .arg("--help")
        .stderr(Stdio::null())
        .status()
        .expect("runs");
    assert!(help.success());
}
