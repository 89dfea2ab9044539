//! Fleet: 5,000 lightweight agent sessions against one server, heartbeats every 10 s.
//!
//! The server is the built `ferry` binary (release, from `CARGO_BIN_EXE_ferry`) in its own
//! process, so its memory and CPU are read from /proc/<pid> without the client side mixed in.
//! The agents are raw `Connect` streams in this process, each on its own TCP connection:
//! enrolled through the real `Enroll` RPC (64 at a time), then connected (Hello, Welcome) and
//! kept alive with a Heartbeat every 10 s. Server memory per session = (RSS with all sessions
//! connected and settled - RSS after enrollment, before any session) / sessions. Server CPU =
//! (utime + stime) over a steady-state window (default 60 s) / window. Prints a table; asserts
//! nothing.
//!
//! Run: `cargo bench --bench fleet` (options after `--`: `--sessions N`, `--window SECONDS`).

#[path = "support/proc_stat.rs"]
mod proc_stat;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;
use tonic::transport::Channel;

use ferry::protocol::pb;
use ferry::protocol::pb::agent_message::Body as AgentBody;
use ferry::protocol::pb::agent_service_client::AgentServiceClient;
use ferry::protocol::pb::server_message::Body as ServerBody;
use proc_stat::{clock_ticks, cpu_ticks};

// The shipped `ferry` binary's allocator: the server in this process costs what it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BOOTSTRAP: &str = "bench-bootstrap-secret-0123456789";
const HEARTBEAT_MS: u64 = 10_000;

fn main() {
    let mut sessions = 5000usize;
    let mut window = 60u64;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--sessions" => sessions = value().parse().expect("--sessions N"),
            "--window" => window = value().parse().expect("--window SECONDS"),
            _ => {}
        }
    }
    // Each session is a socket on both sides; the server inherits the raised limit.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let wanted = (sessions as u64 * 2 + 1024).min(limit.maximum.unwrap_or(u64::MAX));
    if limit.current.is_some_and(|c| c < wanted) {
        rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(wanted),
                maximum: limit.maximum,
            },
        )
        .expect("raising the open file limit");
    }
    println!(
        "open file limit: {}",
        rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .map_or("unlimited".into(), |c| c.to_string())
    );

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("server")
        .env_clear()
        .env(
            "FERRY_DATABASE_URL",
            format!("sqlite://{}/fleet.db", dir.path().display()),
        )
        .env("FERRY_HTTP_ADDR", "127.0.0.1:0")
        .env("FERRY_GRPC_ADDR", "127.0.0.1:0")
        .env("FERRY_BOOTSTRAP_TOKEN", BOOTSTRAP)
        .env("FERRY_LOG_LEVEL", "warn")
        .env("FERRY_AGENT_HEARTBEAT_MS", HEARTBEAT_MS.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting target/release/ferry server");
    let pid = child.id();
    // "ferry server: REST on http://A (docs at /docs), gRPC on http://B"
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let http: SocketAddr = line
        .split("REST on http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected server banner: {line}"));
    let grpc = line.split("gRPC on ").nth(1).unwrap().trim().to_owned();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(pid, http, grpc, sessions, window));
    let _ = child.kill();
    let _ = child.wait();
}

async fn run(pid: u32, http: SocketAddr, grpc: String, sessions: usize, window: u64) {
    let (status, body) = rest(
        http,
        "/v1/clusters",
        json!({"name": "FS-FLEET", "os": "ws2022"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mut identities = Vec::with_capacity(sessions);
    let started = Instant::now();
    let shared = Channel::from_shared(grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut left = sessions;
    while left > 0 {
        let uses = left.min(10_000);
        left -= uses;
        let (status, token) = rest(
            http,
            "/v1/join-tokens",
            json!({"cluster": "FS-FLEET", "uses": uses, "ttl_seconds": 3600}),
        )
        .await;
        assert_eq!(status, 201, "{token}");
        let token = token["token"].as_str().unwrap().to_owned();
        let gate = Arc::new(Semaphore::new(64));
        let mut enrolls = tokio::task::JoinSet::new();
        for n in identities.len()..identities.len() + uses {
            let (gate, channel, token) = (gate.clone(), shared.clone(), token.clone());
            enrolls.spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                let node = format!("FS-FLEET-n{n}");
                let enrolled = AgentServiceClient::new(channel)
                    .enroll(pb::EnrollRequest {
                        join_token: token,
                        cluster: "FS-FLEET".into(),
                        node: node.clone(),
                        software_version: "bench".into(),
                        capabilities: vec![],
                    })
                    .await
                    .unwrap()
                    .into_inner();
                (enrolled.agent_id, enrolled.secret, node)
            });
        }
        while let Some(identity) = enrolls.join_next().await {
            identities.push(identity.unwrap());
        }
    }
    drop(shared);
    let enroll_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_before = rss_kib(pid);

    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(64));
    let welcomed = Arc::new(AtomicUsize::new(0));
    for (id, secret, node) in identities {
        let (gate, grpc, welcomed) = (gate.clone(), grpc.clone(), welcomed.clone());
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await.unwrap();
            hold_session(grpc, id, secret, node, permit, welcomed).await;
        });
    }
    while welcomed.load(Ordering::Relaxed) < sessions {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let connect_s = started.elapsed().as_secs_f64();
    // Let allocator caches and the first heartbeat round settle.
    tokio::time::sleep(Duration::from_millis(HEARTBEAT_MS + 2000)).await;
    let rss_after = rss_kib(pid);

    let cpu_start = cpu_ticks(pid);
    let wall = Instant::now();
    tokio::time::sleep(Duration::from_secs(window)).await;
    let cpu = (cpu_ticks(pid) - cpu_start) as f64 / clock_ticks() as f64;
    let cpu_pct = 100.0 * cpu / wall.elapsed().as_secs_f64();
    let connected = connected_agents(http).await;
    let rss_end = rss_kib(pid);

    let per_session = (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / sessions as f64;
    println!();
    println!(
        "fleet: {sessions} raw Connect sessions, heartbeat every {} s, server = separate `ferry \
         server` process (SQLite)",
        HEARTBEAT_MS / 1000
    );
    println!("{:<46} {:>14}", "measure", "value");
    println!(
        "{:<46} {:>14.1}",
        "enrollment through Enroll RPC, s", enroll_s
    );
    println!(
        "{:<46} {:>14.1}",
        "connect all sessions (Hello/Welcome), s", connect_s
    );
    println!(
        "{:<46} {:>14}",
        "agents `connected` per the server", connected
    );
    println!(
        "{:<46} {:>14}",
        "server RSS before sessions, KiB", rss_before
    );
    println!(
        "{:<46} {:>14}",
        "server RSS, sessions settled, KiB", rss_after
    );
    println!(
        "{:<46} {:>14}",
        "server RSS after the CPU window, KiB", rss_end
    );
    println!(
        "{:<46} {:>14.1}",
        "server RSS per session, KiB (target <= 64)",
        per_session / 1024.0
    );
    println!(
        "{:<46} {:>14.2}",
        format!("server CPU over {window} s, % of one core (< 10)"),
        cpu_pct
    );
}

/// One session: Hello, Welcome, then a heartbeat every interval until the process ends.
async fn hold_session(
    grpc: String,
    id: String,
    secret: String,
    node: String,
    permit: tokio::sync::OwnedSemaphorePermit,
    welcomed: Arc<AtomicUsize>,
) {
    let channel = Channel::from_shared(grpc)
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let (out, rx) = mpsc::channel(4);
    out.send(message(AgentBody::Hello(pb::Hello {
        min_version: 1,
        max_version: 1,
        agent_id: id.clone(),
        cluster: "FS-FLEET".into(),
        node,
        software_version: "bench".into(),
        capabilities: vec![],
    })))
    .await
    .unwrap();
    let mut request = Request::new(ReceiverStream::new(rx));
    request
        .metadata_mut()
        .insert("x-ferry-agent-id", id.parse().unwrap());
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {secret}").parse().unwrap());
    let mut inbound = AgentServiceClient::new(channel)
        .connect(request)
        .await
        .expect("Connect")
        .into_inner();
    match inbound.message().await {
        Ok(Some(pb::ServerMessage {
            body: Some(ServerBody::Welcome(_)),
        })) => {}
        other => panic!("expected Welcome, got {other:?}"),
    }
    drop(permit);
    welcomed.fetch_add(1, Ordering::Relaxed);
    // Spread the heartbeats over the interval, as independent agents would be.
    let offset = Duration::from_millis(rand_offset(&id) % HEARTBEAT_MS);
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + offset,
        Duration::from_millis(HEARTBEAT_MS),
    );
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let beat = message(AgentBody::Heartbeat(pb::Heartbeat { running: vec![] }));
                if out.send(beat).await.is_err() {
                    return;
                }
            }
            msg = inbound.message() => match msg {
                Ok(Some(_)) => {}
                _ => return,
            },
        }
    }
}

fn rand_offset(id: &str) -> u64 {
    id.bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()))
}

fn message(body: AgentBody) -> pb::AgentMessage {
    pb::AgentMessage { body: Some(body) }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// utime + stime of the process, in clock ticks.
async fn connected_agents(http: SocketAddr) -> usize {
    let mut connected = 0;
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(cursor) => format!("/v1/agents?limit=1000&cursor={cursor}"),
            None => "/v1/agents?limit=1000".to_owned(),
        };
        let (status, page) = request(http, "GET", &path, None).await;
        if status != 200 {
            return connected;
        }
        let items = page["items"].as_array().cloned().unwrap_or_default();
        connected += items.iter().filter(|a| a["state"] == "connected").count();
        match page["next"].as_str() {
            Some(next) if !items.is_empty() => after = Some(next.to_owned()),
            _ => return connected,
        }
    }
}

async fn rest(http: SocketAddr, path: &str, body: Value) -> (u16, Value) {
    request(http, "POST", path, Some(body)).await
}

/// One HTTP/1.1 exchange as the bootstrap admin.
async fn request(http: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\nAuthorization: Bearer \
         {BOOTSTRAP}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(http).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (
            status,
            serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
        )
    })
    .await
    .unwrap()
}
