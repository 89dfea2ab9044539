//! TLS between agents and the server: a CA and a server certificate for `localhost` and
//! 127.0.0.1 are made at test time; an agent pinning that CA connects and runs a task, one
//! pinning another CA or talking plain text never gets in.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use ferry::agent::exec::{Builtin, DriverKind, Executor};
use ferry::agent::session::AgentConfig;
use ferry::agent::state::StateDir;
use ferry::config::Config;
use ferry::server::{RunningServer, start_with_store};

use common::{BOOTSTRAP, PATIENCE, rest};

/// A CA, written as `<name>-ca.pem`, and a server certificate it signed for localhost and
/// 127.0.0.1 (`<name>-cert.pem`, `<name>-key.pem`).
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &Path, name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let pki = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        cert: dir.join(format!("{name}-cert.pem")),
        key: dir.join(format!("{name}-key.pem")),
    };
    std::fs::write(&pki.ca, ca.pem()).unwrap();
    std::fs::write(&pki.cert, server.pem()).unwrap();
    std::fs::write(&pki.key, server_key.serialize_pem()).unwrap();
    pki
}

async fn tls_server(pki: &Pki) -> RunningServer {
    let (store, dir) = common::sqlite_store().await;
    // The store's directory must outlive the server; the test process ends soon after.
    std::mem::forget(dir);
    let config = Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        bootstrap_token: Some(BOOTSTRAP.into()),
        agent_heartbeat_ms: 200,
        agent_lease_ms: 2000,
        agent_down_after_ms: 3000,
        tls_cert: Some(pki.cert.clone()),
        tls_key: Some(pki.key.clone()),
        ..Default::default()
    };
    config
        .validate()
        .expect("the generated files pass validation");
    let server = start_with_store(&config, store)
        .await
        .expect("server starts");
    assert!(server.grpc_tls);
    let (status, body) = rest(
        server.http_addr,
        "POST",
        "/v1/clusters",
        Some(json!({"name": "FS-NEW", "os": "ws2022"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    server
}

async fn join_token(server: &RunningServer) -> String {
    let (status, body) = rest(
        server.http_addr,
        "POST",
        "/v1/join-tokens",
        Some(json!({"cluster": "FS-NEW", "uses": 1})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

struct AgentProcess {
    handle: JoinHandle<anyhow::Result<()>>,
    stop: oneshot::Sender<()>,
    state_dir: PathBuf,
}

impl AgentProcess {
    fn identity(&self) -> Option<ferry::agent::state::Identity> {
        StateDir::open(&self.state_dir)
            .ok()?
            .load_identity()
            .ok()
            .flatten()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(PATIENCE, self.handle)
            .await
            .expect("agent stops")
            .unwrap()
            .unwrap();
    }
}

fn spawn_agent(
    server: String,
    ca: Option<&Path>,
    state_dir: PathBuf,
    token: String,
) -> AgentProcess {
    let mut config = AgentConfig::new(vec![server], "FS-NEW", "N1", &state_dir);
    config.join_token = Some(token);
    config.ca = ca.map(Path::to_path_buf);
    config.backoff_initial = Duration::from_millis(50);
    config.backoff_max = Duration::from_millis(300);
    let executor: Arc<dyn Executor> = Arc::new(Builtin::new(DriverKind::Sim, None));
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(ferry::agent::session::run(config, executor, async move {
        let _ = stopped.await;
    }));
    AgentProcess {
        handle,
        stop,
        state_dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_pinning_the_ca_connect_and_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "good");
    let other = make_pki(dir.path(), "other");
    let server = tls_server(&pki).await;
    let port = server.grpc_addr.port();

    // The server name checked is the URL's host: `localhost` is in the certificate.
    let agent = spawn_agent(
        format!("https://localhost:{port}"),
        Some(&pki.ca),
        dir.path().join("good-agent"),
        join_token(&server).await,
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let id = loop {
        if let Some(identity) = agent.identity() {
            let id = identity.agent_id.to_string();
            let (_, body) = rest(server.http_addr, "GET", &format!("/v1/agents/{id}"), None).await;
            if body["state"] == "connected" {
                break id;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "agent never connected over TLS"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (status, task) = rest(
        server.http_addr,
        "POST",
        &format!("/v1/agents/{id}/tasks"),
        Some(json!({"action": "echo", "text": "over tls"})),
    )
    .await;
    assert_eq!(status, 201, "{task}");
    let task_path = format!("/v1/tasks/{}", task["id"].as_str().unwrap());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (_, body) = rest(server.http_addr, "GET", &task_path, None).await;
        if body["state"] == "succeeded" {
            assert_eq!(body["result"]["text"], "over tls");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task never finished: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Another CA: the handshake fails, the agent keeps retrying and never enrolls.
    let foreign = spawn_agent(
        format!("https://127.0.0.1:{port}"),
        Some(&other.ca),
        dir.path().join("foreign-agent"),
        join_token(&server).await,
    );
    // Plain text against a TLS listener: no HTTP/2 exchange gets through.
    let plain = spawn_agent(
        format!("http://127.0.0.1:{port}"),
        None,
        dir.path().join("plain-agent"),
        join_token(&server).await,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !foreign.handle.is_finished(),
        "a refused handshake is retried"
    );
    assert!(
        !plain.handle.is_finished(),
        "a refused connection is retried"
    );
    assert!(
        foreign.identity().is_none(),
        "enrolled through a foreign CA"
    );
    assert!(plain.identity().is_none(), "enrolled in plain text");
    let (_, agents) = rest(server.http_addr, "GET", "/v1/agents", None).await;
    assert_eq!(
        agents["items"].as_array().map(Vec::len),
        Some(1),
        "{agents}"
    );

    foreign.stop().await;
    plain.stop().await;
    agent.stop().await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_tls_files_fail_the_start_with_the_setting_named() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "good");
    let config = Config {
        tls_cert: Some(pki.cert.clone()),
        tls_key: Some(pki.cert.clone()),
        ..Default::default()
    };
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("FERRY_TLS_KEY"), "{err}");
    let config = Config {
        tls_key: Some(pki.key.clone()),
        ..Default::default()
    };
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("tls_cert"), "{err}");
}
