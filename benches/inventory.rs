//! Inventory benchmark: import a 100,000-share inventory (500 groups x 200 shares, 3 permission
//! entries each) and page through every group's shares 100 at a time, on SQLite and, when
//! `FERRY_TEST_POSTGRES_URL` is set, on Postgres. Prints a table; asserts nothing about time.
//!
//! Run: `cargo bench --bench inventory` (optionally `-- --groups 50` for a quick look).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry::auth::Caller;
use ferry::model::{NewCluster, OsGeneration, Role};
use ferry::model::{PageParams, ShareFilter};
use ferry::service::Service;
use ferry::store::Store;

struct Row {
    backend: &'static str,
    shares: i64,
    rows: i64,
    import: Duration,
    reimport: Duration,
    one_group: Duration,
    diff: Duration,
    pages: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn run(backend: &'static str, store: Arc<dyn Store>, groups: usize, shares: usize) -> Row {
    let service = Service::new(store);
    let caller = Caller::local(Role::Admin);
    service
        .create_cluster(
            &caller,
            &NewCluster {
                name: "bench".into(),
                os: OsGeneration::Ws2003,
                description: String::new(),
                discovery_interval_seconds: None,
            },
        )
        .await
        .unwrap();
    let doc = common::sample_inventory(groups, shares, 3);
    let counts = {
        let mut d = doc.clone();
        d.canonicalize();
        d.counts()
    };

    let started = Instant::now();
    let outcome = service
        .import_inventory(&caller, "bench", doc.clone(), None)
        .await
        .unwrap();
    let import = started.elapsed();
    assert!(outcome.created);

    let started = Instant::now();
    let again = service
        .import_inventory(&caller, "bench", doc.clone(), None)
        .await
        .unwrap();
    let reimport = started.elapsed();
    assert!(!again.created);

    // The common follow-up: a fresh report where one group changed.
    let mut changed = doc;
    changed.groups[groups / 2].shares[0].description = "changed".into();
    let started = Instant::now();
    let outcome = service
        .import_inventory(&caller, "bench", changed, None)
        .await
        .unwrap();
    let one_group = started.elapsed();
    assert!(outcome.created);

    let started = Instant::now();
    let diff = service
        .diff_snapshots(&caller, "bench", 1, 2)
        .await
        .unwrap();
    let diff_time = started.elapsed();
    assert_eq!(diff.diff.changes.len(), 1);

    let mut latencies = Vec::new();
    let mut seen = 0usize;
    let mut group_cursor = None;
    loop {
        let page = service
            .list_groups(
                &caller,
                "bench",
                &PageParams {
                    limit: Some(100),
                    cursor: group_cursor,
                },
            )
            .await
            .unwrap();
        for group in &page.items {
            let mut cursor = None;
            loop {
                let started = Instant::now();
                let shares = service
                    .list_shares(
                        &caller,
                        &group.id.to_string(),
                        &ShareFilter::default(),
                        &PageParams {
                            limit: Some(100),
                            cursor,
                        },
                    )
                    .await
                    .unwrap();
                latencies.push(started.elapsed());
                seen += shares.items.len();
                match shares.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        match page.next {
            Some(next) => group_cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen as i64, counts.shares, "paging saw every share once");
    latencies.sort();
    Row {
        backend,
        shares: counts.shares,
        rows: counts.groups + counts.resources + counts.shares + counts.permissions,
        import,
        reimport,
        one_group,
        diff: diff_time,
        pages: latencies.len(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: *latencies.last().unwrap(),
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let groups = arg("--groups", 500);
    let shares = arg("--shares", 200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows = runtime.block_on(async {
        let mut rows = Vec::new();
        let (store, _dir) = common::sqlite_store().await;
        rows.push(run("sqlite", store, groups, shares).await);
        if let Some(store) = common::postgres_store().await {
            rows.push(run("postgres", store, groups, shares).await);
        }
        rows
    });
    println!(
        "\n{:<9} {:>8} {:>9} {:>9} {:>12} {:>12} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9}",
        "backend",
        "shares",
        "rows",
        "import",
        "shares/s",
        "rows/s",
        "same doc",
        "1 group",
        "diff",
        "pages",
        "page p50",
        "page p99",
        "page max"
    );
    for r in rows {
        let secs = r.import.as_secs_f64();
        println!(
            "{:<9} {:>8} {:>9} {:>8.2}s {:>12.0} {:>12.0} {:>7.0}ms {:>7.0}ms {:>7.0}ms {:>7} {:>7.2}ms {:>7.2}ms {:>7.2}ms",
            r.backend,
            r.shares,
            r.rows,
            secs,
            r.shares as f64 / secs,
            r.rows as f64 / secs,
            r.reimport.as_secs_f64() * 1e3,
            r.one_group.as_secs_f64() * 1e3,
            r.diff.as_secs_f64() * 1e3,
            r.pages,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.max.as_secs_f64() * 1e3,
        );
    }
    println!("targets: import < 3 s on SQLite, < 5 s on Postgres; page p99 < 10 ms");
}
