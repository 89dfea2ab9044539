//! Dispatch latency: a real server on port 0 (SQLite in a temporary directory, then Postgres
//! when `FERRY_BENCH_POSTGRES_URL` or `FERRY_TEST_POSTGRES_URL` is set), 100 agents
//! enrolled through the real `Enroll` RPC and connected over their own TCP connections, each a
//! hand-driven `Connect` stream that answers every assignment with a result at once. Tasks
//! (`echo`, sleep 0) are created through `Service::run_task`, first one after another, then 16 at
//! a time.
//!
//! Clock points: `t0` is taken just BEFORE `run_task` is called, so the latency includes storing
//! the task (and its audit record) as well as the push; the agent's clock point is the moment its
//! stream yields the `TaskAssignment`; end to end is `t0` to the `ResultAck` (the result has
//! been applied by its fenced update). Prints a table; asserts nothing about time.
//!
//! Run: `cargo bench --bench dispatch` (options after `--`: `--agents N`, `--tasks N`,
//! `--concurrency N`).

#[path = "support/postgres.rs"]
mod postgres;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;
use tonic::transport::Channel;

use ferry::auth::Caller;
use ferry::config::Config;
use ferry::model::Action;
use ferry::protocol::pb;
use ferry::protocol::pb::agent_message::Body as AgentBody;
use ferry::protocol::pb::agent_service_client::AgentServiceClient;
use ferry::protocol::pb::server_message::Body as ServerBody;
use ferry::service::Service;

const BOOTSTRAP: &str = "bench-bootstrap-secret-0123456789";

/// When each task reached its agent, and when its result was acknowledged.
#[derive(Default)]
struct Seen {
    received: HashMap<String, Instant>,
    acked: HashMap<String, Instant>,
}

fn main() {
    let mut agents = 100usize;
    let mut tasks = 2000usize;
    let mut concurrency = 16usize;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--agents" => agents = value().parse().expect("--agents N"),
            "--tasks" => tasks = value().parse().expect("--tasks N"),
            "--concurrency" => concurrency = value().parse().expect("--concurrency N"),
            // cargo bench passes `--bench`.
            _ => {}
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let sqlite = format!("sqlite://{}/bench.db", dir.path().display());
            run("SQLite", &sqlite, agents, tasks, concurrency).await;
            if let Some(url) = postgres::server_url() {
                let url = postgres::fresh_database(&url).await;
                run("Postgres", &url, agents, tasks, concurrency).await;
            }
        });
}

async fn run(backend: &str, database_url: &str, agents: usize, tasks: usize, concurrency: usize) {
    let config = Config {
        database_url: database_url.to_owned(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        bootstrap_token: Some(BOOTSTRAP.into()),
        log_level: "warn".into(),
        ..Default::default()
    };
    let server = ferry::server::start(&config).await.expect("server starts");
    let url = format!("http://{}", server.grpc_addr);
    let service = server.service.clone();
    let caller = service.authenticate(Some(BOOTSTRAP), None).await.unwrap();
    service
        .create_cluster(
            &caller,
            &serde_json::from_value(json!({"name": "FS-BENCH", "os": "ws2022"})).unwrap(),
        )
        .await
        .unwrap();
    let join = service
        .create_join_token(
            &caller,
            &serde_json::from_value(json!({"cluster": "FS-BENCH", "uses": agents})).unwrap(),
        )
        .await
        .unwrap();
    let join = serde_json::to_value(&join).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let seen = Arc::new(Mutex::new(Seen::default()));
    let started = Instant::now();
    let mut ids = Vec::with_capacity(agents);
    for n in 0..agents {
        ids.push(connect_agent(&url, &join, n, seen.clone()).await);
    }
    println!(
        "{agents} agents enrolled and connected through the protocol in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let sequential = measure(&service, &caller, &ids, tasks, 1, &seen).await;
    let concurrent = measure(&service, &caller, &ids, tasks, concurrency, &seen).await;

    println!();
    println!("dispatch latency, {agents} connected agents, echo tasks (sleep 0), {backend}");
    println!("t0 = just before Service::run_task (store + audit + push included)");
    println!(
        "{:<42} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "measure", "tasks", "p50 ms", "p90 ms", "p99 ms", "max ms", "tasks/s"
    );
    for (mode, run) in [
        ("one at a time".to_owned(), &sequential),
        (format!("{concurrency} at a time"), &concurrent),
    ] {
        for (what, samples) in [
            ("run_task call", &run.call),
            ("t0 -> agent received", &run.received),
            ("t0 -> result applied (ack)", &run.acked),
        ] {
            let p = percentiles(samples);
            println!(
                "{:<42} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.0}",
                format!("{mode}: {what}"),
                samples.len(),
                p[0],
                p[1],
                p[2],
                p[3],
                run.rate
            );
        }
    }
    println!("target: p99 t0 -> agent received < 10 ms on loopback");
    server.stop().await.unwrap();
}

struct Run {
    call: Vec<Duration>,
    received: Vec<Duration>,
    acked: Vec<Duration>,
    rate: f64,
}

async fn measure(
    service: &Service,
    caller: &Caller,
    ids: &[String],
    tasks: usize,
    concurrency: usize,
    seen: &Arc<Mutex<Seen>>,
) -> Run {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (service, caller, ids, next) =
            (service.clone(), caller.clone(), ids.to_vec(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= tasks {
                    return out;
                }
                let action = Action::Echo {
                    text: format!("t{n}"),
                    sleep_ms: 0,
                };
                let t0 = Instant::now();
                let task = service
                    .run_task(&caller, &ids[n % ids.len()], &action)
                    .await
                    .expect("task stored");
                out.push((task.id.to_string(), t0, t0.elapsed()));
            }
        }));
    }
    let mut sent = Vec::new();
    for worker in workers {
        sent.extend(worker.await.unwrap());
    }
    let rate = tasks as f64 / started.elapsed().as_secs_f64();
    // Wait for the last acknowledgements.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = {
            let seen = seen.lock().unwrap();
            sent.iter().all(|(id, _, _)| seen.acked.contains_key(id))
        };
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen.lock().unwrap();
    let mut run = Run {
        call: Vec::new(),
        received: Vec::new(),
        acked: Vec::new(),
        rate,
    };
    for (id, t0, call) in sent {
        run.call.push(call);
        if let Some(at) = seen.received.get(&id) {
            run.received.push(at.saturating_duration_since(t0));
        }
        if let Some(at) = seen.acked.get(&id) {
            run.acked.push(at.saturating_duration_since(t0));
        }
    }
    run
}

/// Enrolls one agent through the protocol and serves its stream in the background.
async fn connect_agent(url: &str, join: &str, n: usize, seen: Arc<Mutex<Seen>>) -> String {
    let channel = Channel::from_shared(url.to_owned())
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap();
    let node = format!("FS-BENCH-n{n}");
    let enrolled = AgentServiceClient::new(channel.clone())
        .enroll(pb::EnrollRequest {
            join_token: join.to_owned(),
            cluster: "FS-BENCH".into(),
            node: node.clone(),
            software_version: "bench".into(),
            capabilities: vec!["echo".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let (out, rx) = mpsc::channel(1024);
    out.send(message(AgentBody::Hello(pb::Hello {
        min_version: 1,
        max_version: 1,
        agent_id: enrolled.agent_id.clone(),
        cluster: "FS-BENCH".into(),
        node,
        software_version: "bench".into(),
        capabilities: vec!["echo".into()],
    })))
    .await
    .unwrap();
    let mut request = Request::new(ReceiverStream::new(rx));
    request
        .metadata_mut()
        .insert("x-ferry-agent-id", enrolled.agent_id.parse().unwrap());
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", enrolled.secret).parse().unwrap(),
    );
    let mut inbound = AgentServiceClient::new(channel)
        .connect(request)
        .await
        .unwrap()
        .into_inner();
    let Some(pb::ServerMessage {
        body: Some(ServerBody::Welcome(welcome)),
    }) = inbound.message().await.unwrap()
    else {
        panic!("no Welcome");
    };
    let heartbeat = Duration::from_millis(welcome.heartbeat_interval_ms.into());
    let beats = out.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(heartbeat);
        loop {
            tick.tick().await;
            let beat = message(AgentBody::Heartbeat(pb::Heartbeat { running: vec![] }));
            if beats.send(beat).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Ok(Some(msg)) = inbound.message().await {
            let now = Instant::now();
            match msg.body {
                Some(ServerBody::Task(assignment)) => {
                    let task = assignment.task.unwrap();
                    seen.lock()
                        .unwrap()
                        .received
                        .insert(task.task_id.clone(), now);
                    let text = match assignment.action.and_then(|a| a.kind) {
                        Some(pb::action::Kind::Echo(echo)) => echo.text,
                        _ => String::new(),
                    };
                    let result = pb::TaskResult {
                        task: Some(task),
                        outcome: Some(pb::task_result::Outcome::Succeeded(pb::Succeeded {
                            report: Some(pb::succeeded::Report::Echo(pb::EchoReport {
                                text,
                                slept_ms: 0,
                            })),
                        })),
                        final_progress: None,
                    };
                    if out.send(message(AgentBody::Result(result))).await.is_err() {
                        return;
                    }
                }
                Some(ServerBody::ResultAck(ack)) => {
                    if let Some(task) = ack.task {
                        seen.lock().unwrap().acked.insert(task.task_id, now);
                    }
                }
                _ => {}
            }
        }
    });
    enrolled.agent_id
}

fn message(body: AgentBody) -> pb::AgentMessage {
    pb::AgentMessage { body: Some(body) }
}

/// p50, p90, p99 and max in milliseconds.
fn percentiles(samples: &[Duration]) -> [f64; 4] {
    if samples.is_empty() {
        return [f64::NAN; 4];
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |q: f64| {
        let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i].as_secs_f64() * 1000.0
    };
    [at(0.5), at(0.9), at(0.99), at(1.0)]
}
