//! REST reads under load: `GET /v1/clusters` (one cluster, a valid token) on a real server on
//! SQLite, against a bare axum handler answering the same JSON bytes, in the same process and
//! the same run, alternating rounds so that the machine's noise falls on both alike. Each side
//! gets `--connections` keep-alive connections, each sending one request after another for
//! `--seconds`. Prints requests per second per round and Ferry's share of the bare handler's;
//! asserts nothing about time.
//!
//! Run: `cargo bench --bench rest` (options after `--`: `--connections N`, `--seconds N`,
//! `--rounds N`, `--path /v1/...` for another read).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry::config::Config;

const TOKEN: &str = "bench-rest-bootstrap-secret-0123456789";

fn main() {
    let mut connections = 32usize;
    let mut seconds = 10u64;
    let mut rounds = 2usize;
    let mut path = "/v1/clusters".to_owned();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--connections" => connections = value().parse().expect("--connections N"),
            "--seconds" => seconds = value().parse().expect("--seconds N"),
            "--rounds" => rounds = value().parse().expect("--rounds N"),
            "--path" => path = value(),
            // cargo bench passes `--bench`.
            _ => {}
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(
            &path,
            connections,
            Duration::from_secs(seconds),
            rounds,
        ));
}

async fn run(path: &str, connections: usize, window: Duration, rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        database_url: format!("sqlite://{}/ferry.db", dir.path().display()),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        bootstrap_token: Some(TOKEN.into()),
        ..Config::default()
    };
    let server = ferry::server::start(&config).await.unwrap();
    let ferry_url = format!("http://{}{path}", server.http_addr);
    let client = client();
    let created = client
        .post(format!("http://{}/v1/clusters", server.http_addr))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"name": "FS-NEW", "os": "ws2008r2"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let body = client
        .get(&ferry_url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    let bare = axum::Router::new().route(
        path,
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare_url = format!("http://{}{path}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, bare).await });

    println!(
        "GET {path}, {connections} connections, {} s per side per round",
        window.as_secs()
    );
    println!("| round | bare axum handler | ferry | ferry / bare |");
    println!("| --- | --- | --- | --- |");
    for round in 1..=rounds {
        let bare = load(&bare_url, connections, window).await;
        let ferry = load(&ferry_url, connections, window).await;
        println!(
            "| {round} | {bare:.0} req/s | {ferry:.0} req/s | {:.1}% |",
            100.0 * ferry / bare
        );
    }
    server.stop().await.unwrap();
}

/// A client whose connections are its own: one per load connection.
fn client() -> reqwest::Client {
    ferry::webhooks::outbound_client(None)
        .unwrap()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap()
}

/// Requests per second answered 200 over `window`, with `connections` clients each sending one
/// request after another.
async fn load(url: &str, connections: usize, window: Duration) -> f64 {
    let answered = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + window;
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (url, answered) = (url.to_owned(), answered.clone());
            tokio::spawn(async move {
                let client = client();
                while Instant::now() < deadline {
                    let response = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
                    let ok = response.status() == 200;
                    response.bytes().await.unwrap();
                    assert!(ok, "GET {url} failed");
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    answered.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}
