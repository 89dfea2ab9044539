//! Test support shared by the integration test crates: stores on every backend, a deterministic
//! inventory generator, and the small helpers every suite that talks to a server needs (the
//! bootstrap token, REST and gRPC calls carrying it, waiting for what happens in the background).
//!
//! Postgres runs when `FERRY_TEST_POSTGRES_URL` names a server whose role may create databases
//! (e.g. `postgres://postgres@127.0.0.1:5432/test`); every store gets a database of its own.
//! Without it the Postgres half is skipped with a notice, unless `FERRY_TEST_REQUIRE_POSTGRES=1`.

#![allow(dead_code)]

pub mod ports;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use ferry::model::{
    Access, AceType, CachingMode, Disk, Group, InventoryCounts, InventoryDocument, Network,
    NetworkRole, NewCluster, Node, OsGeneration, Permission, Processor, Resource, ResourceKind,
    ResourceState, Role, Share, TokenInfo,
};
use ferry::store::postgres::PostgresStore;
use ferry::store::sqlite::SqliteStore;
use ferry::store::{InventoryImport, Store, TokenRecord};
use sqlx::Connection;
use tempfile::TempDir;
use uuid::Uuid;

pub const POSTGRES_URL_ENV: &str = "FERRY_TEST_POSTGRES_URL";

/// The bootstrap admin secret every suite's servers start with.
pub const BOOTSTRAP: &str = "test-bootstrap-secret-0123456789";

/// Longest a test waits for something that happens in the background (an agent connecting, a
/// job finishing) before it fails. Generous: it only costs time when a test is failing anyway.
pub const PATIENCE: Duration = Duration::from_secs(60);
pub const REQUIRE_POSTGRES_ENV: &str = "FERRY_TEST_REQUIRE_POSTGRES";

/// Test databases are named `ferry_test_<uuid v7 simple>`; the v7 timestamp lets a later run drop
/// the ones an earlier run left behind.
const DATABASE_PREFIX: &str = "ferry_test_";
/// Databases older than this are assumed abandoned.
const STALE_AFTER_MS: u64 = 2 * 60 * 60 * 1000;

// ---- stores -----------------------------------------------------------------------------------

/// A fresh SQLite store in a temporary directory; keep the directory alive as long as the store.
pub async fn sqlite_store() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().expect("create temp dir");
    let url = sqlite_url(&dir);
    let store = SqliteStore::open(&url).await.expect("open SQLite store");
    (Arc::new(store), dir)
}

/// URL of a (not yet created) SQLite database file inside `dir`.
pub fn sqlite_url(dir: &TempDir) -> String {
    format!("sqlite://{}", dir.path().join("ferry.db").display())
}

/// The Postgres server URL from the environment. Prints a notice (once) and returns `None` when
/// it is not set; panics instead when Postgres is required.
pub fn postgres_url() -> Option<String> {
    static NOTICE_SHOWN: AtomicBool = AtomicBool::new(false);
    match std::env::var(POSTGRES_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            if std::env::var(REQUIRE_POSTGRES_ENV).is_ok_and(|v| v == "1") {
                panic!(
                    "{REQUIRE_POSTGRES_ENV}=1 but {POSTGRES_URL_ENV} is not set; set it to a \
                     Postgres URL whose role can create databases, e.g. \
                     postgres://postgres@127.0.0.1:5432/test"
                );
            }
            if !NOTICE_SHOWN.swap(true, Ordering::Relaxed) {
                // Straight to the process's stderr: the test harness swallows `eprintln!` of
                // passing tests, and this notice must be seen.
                let _ = writeln!(
                    std::io::stderr(),
                    "NOTICE: {POSTGRES_URL_ENV} not set; Postgres tests skipped"
                );
            }
            None
        }
    }
}

/// Creates an empty database on the test server and returns its URL; `None` when Postgres tests
/// are skipped. The database uses an ICU (linguistic) default collation where the server
/// supports it, so that anything relying on the default collation for byte order shows up.
pub async fn fresh_postgres_database() -> Option<String> {
    let server = postgres_url()?;
    let name = create_database(&server).await;
    Some(with_database(&server, &name))
}

/// A fresh Postgres store on a database of its own; `None` when Postgres tests are skipped.
/// The database outlives the store; a later test run drops it.
pub async fn postgres_store() -> Option<Arc<dyn Store>> {
    let url = fresh_postgres_database().await?;
    Some(open_postgres(&url).await)
}

/// One fresh store per backend under test: always SQLite, and Postgres when configured.
pub async fn all_stores() -> Vec<(&'static str, Arc<dyn Store>, Option<TempDir>)> {
    let (sqlite, dir) = sqlite_store().await;
    let mut stores = vec![("sqlite", sqlite, Some(dir))];
    if let Some(postgres) = postgres_store().await {
        stores.push(("postgres", postgres, None));
    }
    stores
}

/// Runs `test` against a fresh store of every backend, one after the other. A failure is
/// re-raised with the backend's name in front, e.g. `[postgres] assertion failed: ...`. The
/// Postgres database of a passing test is dropped; a failing test's is kept for inspection.
pub async fn on_each_backend<F, Fut>(test: F)
where
    F: Fn(&'static str, Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (sqlite, dir) = sqlite_store().await;
    run_on("sqlite", test("sqlite", sqlite), None).await;
    drop(dir);
    if let Some(server) = postgres_url() {
        let name = create_database(&server).await;
        let store = open_postgres(&with_database(&server, &name)).await;
        run_on("postgres", test("postgres", store), Some((server, name))).await;
    }
}

/// Runs one backend's test body as a task (so a panic can be caught and labelled), then drops
/// its Postgres database when it passed.
async fn run_on(
    backend: &'static str,
    body: impl Future<Output = ()> + Send + 'static,
    database: Option<(String, String)>,
) {
    match tokio::spawn(body).await {
        Ok(()) => {
            if let Some((server, name)) = database {
                drop_database(&server, &name).await;
            }
        }
        Err(err) => {
            let detail = if err.is_panic() {
                let payload = err.into_panic();
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "test panicked".to_owned())
            } else {
                err.to_string()
            };
            match database {
                Some((_, name)) => panic!("[{backend}] {detail}\n(database {name} kept)"),
                None => panic!("[{backend}] {detail}"),
            }
        }
    }
}

async fn open_postgres(url: &str) -> Arc<dyn Store> {
    let store = PostgresStore::open(url)
        .await
        .unwrap_or_else(|e| panic!("open Postgres store on {url}: {e:#}"));
    Arc::new(store)
}

async fn admin_connection(server: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(server)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_ENV} ({server}): {e}"))
}

/// Creates a uniquely named database on `server` and returns its name.
async fn create_database(server: &str) -> String {
    let mut admin = admin_connection(server).await;
    drop_stale_databases(&mut admin).await;
    let name = format!("{DATABASE_PREFIX}{}", Uuid::now_v7().simple());
    let linguistic = format!(
        "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' \
         LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
    );
    if sqlx::raw_sql(sqlx::AssertSqlSafe(linguistic))
        .execute(&mut admin)
        .await
        .is_err()
    {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
    }
    let _ = admin.close().await;
    name
}

/// Best effort: `FORCE` ends the connections the dropped store's pool may still be closing.
async fn drop_database(server: &str, name: &str) {
    let mut admin = admin_connection(server).await;
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    let _ = admin.close().await;
}

/// `server` with its database name replaced by `database`.
fn with_database(server: &str, database: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{root}/{database}?{query}"),
        None => format!("{root}/{database}"),
    }
}

/// Drops test databases older than [`STALE_AFTER_MS`], once per process. Best effort.
async fn drop_stale_databases(admin: &mut sqlx::PgConnection) {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::Relaxed) {
        return;
    }
    let Ok(names) = sqlx::query_scalar::<_, String>(
        "SELECT datname FROM pg_database WHERE datname LIKE 'ferry\\_test\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    else {
        return;
    };
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    for name in names {
        let Some(created_ms) = name
            .strip_prefix(DATABASE_PREFIX)
            .and_then(|hex| hex.get(..12))
            .and_then(|ms| u64::from_str_radix(ms, 16).ok())
        else {
            continue;
        };
        if now_ms.saturating_sub(created_ms) > STALE_AFTER_MS {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut *admin)
            .await;
        }
    }
}

// ---- data ---------------------------------------------------------------------------------------

pub fn new_cluster(name: &str) -> NewCluster {
    NewCluster {
        name: name.to_owned(),
        os: OsGeneration::Ws2012r2,
        description: format!("cluster {name}"),
        discovery_interval_seconds: None,
    }
}

/// A token record with a hash derived from its name.
pub fn token_record(name: &str, role: Role) -> TokenRecord {
    TokenRecord {
        info: TokenInfo {
            id: Uuid::now_v7(),
            name: name.to_owned(),
            role,
            created_at: chrono::Utc::now(),
            expires_at: None,
            revoked_at: None,
        },
        secret_hash: format!("hash-of-{name}"),
    }
}

/// A validated, canonical document with its JSON, hash and counts, ready to import.
#[derive(Debug, Clone)]
pub struct PreparedInventory {
    pub document: InventoryDocument,
    pub json: String,
    pub hash: String,
    pub counts: InventoryCounts,
}

impl PreparedInventory {
    /// Validates (panicking on errors) and canonicalizes `document`.
    pub fn new(mut document: InventoryDocument) -> Self {
        let errors = document.validate();
        assert!(errors.is_empty(), "sample inventory is invalid: {errors:?}");
        document.canonicalize();
        let (json, hash) = document.canonical_json();
        let counts = document.counts();
        Self {
            document,
            json,
            hash,
            counts,
        }
    }

    /// An unconditional import into `cluster_id` by `test`.
    pub fn import(&self, cluster_id: Uuid) -> InventoryImport<'_> {
        InventoryImport {
            cluster_id,
            document: &self.document,
            document_json: &self.json,
            content_hash: &self.hash,
            counts: self.counts,
            created_by: "test",
            expected_hash: None,
            change: None,
        }
    }

    /// An import that only happens when the newest snapshot has `expected` as hash.
    pub fn import_if<'a>(&'a self, cluster_id: Uuid, expected: &'a str) -> InventoryImport<'a> {
        InventoryImport {
            expected_hash: Some(expected),
            ..self.import(cluster_id)
        }
    }
}

/// Principals cycled through permission entries; includes non-ASCII and mixed case.
const PRINCIPALS: [&str; 6] = [
    "Everyone",
    "BUILTIN\\Administrators",
    "CORP\\Бухгалтерия",
    "CORP\\Domain Users",
    "CORP\\経理",
    "CORP\\FileAdmins",
];

/// Share names used first in every group: hidden, Unicode, and SQL-wildcard characters.
const SPECIAL_SHARES: [&str; 6] = [
    "Data$",
    "Финансы",
    "共有",
    "100%_Done",
    "Users",
    "Profiles$",
];

/// Group names used first: Unicode.
const SPECIAL_GROUPS: [&str; 2] = ["FS-Финансы", "FS-共有"];

/// Deterministic inventory of `groups` file-server groups with `shares_per_group` shares each,
/// `perms_per_share` permission entries per share (at most 12), and 4 resources per group.
///
/// The first shares of a group are `Data$`, `Финансы`, `共有`, `100%_Done`, `Users`,
/// `Profiles$`, then `Share00006`...; the first groups are `FS-Финансы` and `FS-共有`, then
/// `FS-0002`... Paths nest: every tenth share is a department folder that the next nine live in.
pub fn sample_inventory(
    groups: usize,
    shares_per_group: usize,
    perms_per_share: usize,
) -> InventoryDocument {
    assert!(
        perms_per_share <= 2 * PRINCIPALS.len(),
        "at most one allow and one deny entry per principal"
    );
    let nodes = vec![
        sample_node("NODE1", "10.0.0.11"),
        sample_node("NODE2", "10.0.0.12"),
    ];
    let networks = vec![
        Network {
            name: "Client".into(),
            role: NetworkRole::Client,
            metric: 100,
            subnet: "10.0.0.0/24".into(),
        },
        Network {
            name: "Heartbeat".into(),
            role: NetworkRole::Cluster,
            metric: 50,
            subnet: "192.168.100.0/24".into(),
        },
    ];
    let mut disks = Vec::new();
    let groups = (0..groups)
        .map(|g| {
            let name = SPECIAL_GROUPS
                .get(g)
                .map_or_else(|| format!("FS-{g:04}"), |s| (*s).to_owned());
            let disk = format!("Cluster Disk {}", g + 1);
            let drive = char::from(b'E' + (g % 20) as u8);
            disks.push(Disk {
                resource: disk.clone(),
                drive_letter: Some(format!("{drive}:")),
                size_bytes: 1 << 40,
                free_bytes: 1 << 39,
                csv: false,
            });
            sample_group(g, name, disk, drive, shares_per_group, perms_per_share)
        })
        .collect();
    InventoryDocument {
        nodes,
        networks,
        disks,
        groups,
    }
}

fn sample_node(name: &str, address: &str) -> Node {
    Node {
        name: name.into(),
        address: address.into(),
        processor: Processor {
            vendor: "GenuineIntel".into(),
            model: "Xeon E5-2690 v4".into(),
        },
        facts: [("ntlm".to_owned(), serde_json::json!("v2"))]
            .into_iter()
            .collect(),
    }
}

fn sample_group(
    g: usize,
    name: String,
    disk: String,
    drive: char,
    shares: usize,
    perms: usize,
) -> Group {
    let ip = format!("IP Address 10.0.{}.{}", g / 250, g % 250 + 1);
    let server = format!("File Server ({name})");
    let resources = vec![
        Resource {
            name: name.clone(),
            kind: ResourceKind::NetworkName,
            state: ResourceState::Online,
            properties: [(
                "dns_name".to_owned(),
                serde_json::json!(name.to_lowercase()),
            )]
            .into_iter()
            .collect(),
            depends_on: vec![ip.clone()],
        },
        Resource {
            name: ip.clone(),
            kind: ResourceKind::IpAddress,
            state: ResourceState::Online,
            properties: [
                (
                    "address".to_owned(),
                    serde_json::json!(format!("10.0.{}.{}", g / 250, g % 250 + 1)),
                ),
                ("subnet_mask".to_owned(), serde_json::json!("255.255.255.0")),
            ]
            .into_iter()
            .collect(),
            depends_on: vec![],
        },
        Resource {
            name: disk.clone(),
            kind: ResourceKind::PhysicalDisk,
            state: ResourceState::Online,
            properties: Default::default(),
            depends_on: vec![],
        },
        Resource {
            name: server,
            kind: ResourceKind::FileServer,
            state: if g % 7 == 3 {
                ResourceState::Failed
            } else {
                ResourceState::Online
            },
            properties: [("max_shares".to_owned(), serde_json::json!(10_000))]
                .into_iter()
                .collect(),
            depends_on: vec![name.clone(), disk],
        },
    ];
    let shares = (0..shares)
        .map(|s| sample_share(g, s, drive, perms))
        .collect();
    Group {
        name,
        owner_node: Some(
            if g.is_multiple_of(2) {
                "NODE1"
            } else {
                "NODE2"
            }
            .to_owned(),
        ),
        state: if g % 7 == 3 {
            ResourceState::PartialOnline
        } else {
            ResourceState::Online
        },
        resources,
        shares,
    }
}

fn sample_share(g: usize, s: usize, drive: char, perms: usize) -> Share {
    let name = SPECIAL_SHARES
        .get(s)
        .map_or_else(|| format!("Share{s:05}"), |n| (*n).to_owned());
    let department = format!("{drive}:\\Shares\\Dept{:03}", s / 10);
    let path = if s.is_multiple_of(10) {
        department
    } else {
        format!("{department}\\{}", name.trim_end_matches('$'))
    };
    let permissions = (0..perms)
        .map(|p| {
            let principal = PRINCIPALS[(p + g + s) % PRINCIPALS.len()];
            // The second round over the principals adds deny entries.
            let (ace_type, access) = if p < PRINCIPALS.len() {
                (
                    AceType::Allow,
                    [Access::Read, Access::Change, Access::Full][(s + p) % 3],
                )
            } else {
                (AceType::Deny, Access::Full)
            };
            Permission {
                principal: principal.to_owned(),
                ace_type,
                access,
            }
        })
        .collect();
    Share {
        name,
        path,
        description: if s.is_multiple_of(3) {
            String::new()
        } else {
            format!("Share {s} of group {g}")
        },
        permissions,
        caching: [
            CachingMode::Manual,
            CachingMode::Documents,
            CachingMode::Programs,
            CachingMode::None,
            CachingMode::BranchCache,
        ][s % 5],
        access_based_enumeration: s.is_multiple_of(2),
        continuous_availability: s % 4 == 1,
        encrypt_data: s % 8 == 5,
        user_limit: if s % 6 == 2 { Some(25) } else { None },
    }
}

/// One HTTP/1.1 exchange over a plain socket: (status, body). Blocking std I/O on a blocking
/// thread keeps the tests free of an HTTP client crate.
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_string())
    })
    .await
    .unwrap()
}

/// [`http`] with a JSON answer (`Null` when empty, a string when not JSON).
pub async fn http_json(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let (status, text) = http(addr, method, path, token, body).await;
    let value = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    (status, value)
}

/// [`http_json`] with the bootstrap admin's token.
pub async fn rest(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    http_json(addr, method, path, Some(BOOTSTRAP), body).await
}

/// A gRPC request carrying `token` as its bearer.
pub fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .expect("a token is valid metadata"),
    );
    request
}

/// Polls `probe` until it answers `Some`, failing the test after [`PATIENCE`] with `what` it was
/// waiting for.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- webhook receiver ---------------------------------------------------------------------------

/// One request the receiver got, and the status it answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub answered: StatusCode,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("delivery body is JSON")
    }

    pub fn seqs(&self) -> Vec<i64> {
        self.json()["events"]
            .as_array()
            .expect("`events` array")
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
}

/// A webhook receiver on loopback (a small axum app) that records every request; requests to
/// `/flaky` are refused with 500 as often as asked, requests to `/moved` are redirected to
/// `/hook` with 307. Plain HTTP ([`Receiver::start`]) or behind TLS ([`Receiver::start_tls`]).
#[derive(Clone, Default)]
pub struct Receiver {
    log: Arc<Mutex<Vec<Received>>>,
    /// Requests to `/flaky` still to be refused with 500.
    refuse: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start(refuse_first: usize) -> (Self, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = Receiver::serve(listener);
        receiver.refuse.store(refuse_first, Ordering::SeqCst);
        (receiver, addr)
    }

    /// A receiver answering on `listener`, a port chosen beforehand.
    pub fn serve(listener: tokio::net::TcpListener) -> Self {
        let receiver = Receiver::default();
        let app = receiver.app();
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    /// A receiver behind TLS, presenting `pki`'s server certificate (for `localhost` and
    /// 127.0.0.1).
    pub async fn start_tls(pki: &TestPki) -> (Self, SocketAddr) {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let receiver = Receiver::default();
        let app = receiver.app();
        let listener = TlsListener {
            tcp,
            acceptor: pki.acceptor(),
        };
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, addr)
    }

    fn app(&self) -> axum::Router {
        axum::Router::new()
            .fallback(record)
            .with_state(self.clone())
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

async fn record(
    State(receiver): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let refused = path == "/flaky"
        && receiver
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let answered = if path == "/moved" {
        StatusCode::TEMPORARY_REDIRECT
    } else if refused {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    };
    receiver.log.lock().unwrap().push(Received {
        path,
        headers,
        body,
        answered,
    });
    if answered.is_redirection() {
        (answered, [(header::LOCATION, "/hook")]).into_response()
    } else {
        answered.into_response()
    }
}

// ---- TLS ------------------------------------------------------------------------------------

/// A CA made at test time, and a server certificate it signed for `localhost` and 127.0.0.1.
pub struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestPki {
    pub fn new(name: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        TestPki {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes the CA certificate as `dir/<file>` and answers its path.
    pub fn write_ca(&self, dir: &std::path::Path, file: &str) -> std::path::PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, &self.ca_pem).unwrap();
        path
    }

    /// A TLS acceptor presenting the server certificate, on ring like the server's own TLS.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        use tokio_rustls::rustls;
        let certs = vec![CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

/// A listener axum serves over TLS; connections whose handshake fails (a client refusing the
/// certificate) are dropped and the next one is awaited.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            // Handshakes one at a time are plenty for a test's few connections.
            if let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(tcp)).await
            {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A TLS-terminating proxy in front of a plain HTTP `backend`, as an operator puts one in front
/// of Ferry's REST API. Runs on the runtime it was started on.
pub struct TlsProxy {
    pub addr: SocketAddr,
    cut: tokio::sync::watch::Sender<u64>,
    /// Connections whose handshake succeeded.
    connections: Arc<AtomicUsize>,
}

impl TlsProxy {
    pub async fn start(pki: &TestPki, backend: SocketAddr) -> Self {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let acceptor = pki.acceptor();
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let cuts = cut.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = tcp.accept().await {
                let acceptor = acceptor.clone();
                let mut cut = cuts.subscribe();
                let counted = counted.clone();
                tokio::spawn(async move {
                    let Ok(mut client) = acceptor.accept(client).await else {
                        return;
                    };
                    counted.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut server) = tokio::net::TcpStream::connect(backend).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        TlsProxy {
            addr,
            cut,
            connections,
        }
    }

    /// Connections made through the proxy so far (TLS handshakes that succeeded).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Closes every connection open now; the proxy keeps accepting new ones.
    pub fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

// ---- event streams ---------------------------------------------------------------------------

/// Follows the SSE stream at `path` (`GET /v1/events...`) from after `last_event_id` (sent as
/// `Last-Event-ID` when given), and answers
/// the events received (their JSON `data`) once `done` accepts them; fails after [`PATIENCE`].
pub async fn sse_until(
    addr: SocketAddr,
    path: &str,
    last_event_id: Option<i64>,
    done: impl Fn(&[Value]) -> bool + Send + 'static,
) -> Vec<Value> {
    use std::io::Read;
    let resume = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {BOOTSTRAP}\r\n\
         Accept: text/event-stream\r\n{resume}\r\n"
    );
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = stream
                .read(&mut buf)
                .expect("events arrive before the patience runs out");
            assert!(n > 0, "the stream ended early");
            received.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&received);
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            // Each event is one chunk of the response, so its `data:` line is whole in it.
            let events: Vec<Value> = text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|data| serde_json::from_str(data.trim()).ok())
                .collect();
            if done(&events) {
                return events;
            }
        }
    })
    .await
    .unwrap()
}

// ---- agents ---------------------------------------------------------------------------------

/// A running in-process agent: sending on (or dropping) the first ends its session; the second
/// finishes when it has.
pub type AgentRun = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

/// Starts an in-process `ferry agent` for `node` of `cluster` against the gRPC address `grpc`,
/// its sim driver working on `sim_dir`, enrolling with `join_token` into `state_dir` and
/// reconnecting quickly. Answers its id once it has enrolled, and the handle to stop it.
pub async fn start_sim_agent(
    grpc: SocketAddr,
    cluster: &str,
    node: &str,
    state_dir: &std::path::Path,
    sim_dir: &std::path::Path,
    join_token: String,
    perf_interval: Duration,
) -> (String, AgentRun) {
    use ferry::agent::exec::{Builtin, DriverKind, NodeExecutor};
    let executor = Arc::new(
        NodeExecutor::new(Builtin::new(DriverKind::Sim, Some(sim_dir.to_path_buf())))
            .with_perf_interval(perf_interval),
    );
    start_agent(grpc, cluster, node, state_dir, join_token, executor).await
}

/// Starts an in-process `ferry agent` for `node` of `cluster` running `executor` (a test's own
/// `Builtin`, with its `allow_paths`), as [`start_sim_agent`] does.
pub async fn start_agent(
    grpc: SocketAddr,
    cluster: &str,
    node: &str,
    state_dir: &std::path::Path,
    join_token: String,
    executor: Arc<dyn ferry::agent::exec::Executor>,
) -> (String, AgentRun) {
    let mut config = ferry::agent::session::AgentConfig::new(
        vec![format!("http://{grpc}")],
        cluster,
        node,
        state_dir,
    );
    config.join_token = Some(join_token);
    config.backoff_initial = Duration::from_millis(50);
    config.backoff_max = Duration::from_millis(500);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(ferry::agent::session::run(config, executor, async move {
        let _ = stopped.await;
    }));
    let id = eventually("agent enrolled", move || async move {
        ferry::agent::state::StateDir::open(state_dir)
            .ok()?
            .load_identity()
            .ok()
            .flatten()
    })
    .await
    .agent_id
    .to_string();
    (id, (stop, handle))
}

/// A port free on the loopback interface now, for a server that is given its address.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
