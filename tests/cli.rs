//! The `ferry` binary as scripts use it: exit codes, messages, the token command, and a real
//! server process answering over TCP.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

fn ferry() -> Command {
    without_ferry_env(Command::new(env!("CARGO_BIN_EXE_ferry")))
}

/// The caller's `FERRY_*` environment must not leak into these checks.
fn without_ferry_env(mut cmd: Command) -> Command {
    for (key, _) in std::env::vars() {
        if key.starts_with("FERRY_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs a command that must end on its own; kills it after 30 s so a regression cannot hang CI.
fn finish(cmd: &mut Command) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{cmd:?} did not exit within 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// One HTTP/1.1 request over a plain socket: enough for a smoke test without an HTTP client.
fn http_get(addr: &str, path: &str, token: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn openapi_command_prints_the_committed_spec() {
    let out = ferry().arg("openapi").output().unwrap();
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/openapi/ferry.v1.json"
    ))
    .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), committed);
}

#[test]
fn bad_configuration_exits_2_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/ferry.db", dir.path().display());
    let out = finish(
        ferry()
            .args(["server", "--database-url", &db])
            .env("FERRY_HTTP_ADDR", "not-an-address"),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("FERRY_HTTP_ADDR"), "{err}");

    let out = finish(ferry().args(["server", "--database-url", "mysql://db"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("database_url")
    );

    let out = finish(ferry().args([
        "token",
        "create",
        "--role",
        "root",
        "--name",
        "x",
        "--database-url",
        &db,
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("--role"));
}

#[test]
fn token_create_then_a_real_server_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/ferry.db", dir.path().display());
    let out = ferry()
        .args([
            "token",
            "create",
            "--role",
            "viewer",
            "--name",
            "smoke",
            "--ttl",
            "1h",
            "--database-url",
            &db,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("fy_"), "{token}");

    let server = spawn_server(&db, None);
    let addr = server.rest.clone();

    let (status, body) = http_get(&addr, "/v1/clusters", &token);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"items\""), "{body}");
    let (status, _) = http_get(&addr, "/v1/clusters", "fy_wrong");
    assert_eq!(status, 401);
    let (status, _) = http_get(&addr, "/v1/tokens", &token);
    assert_eq!(status, 403, "a viewer cannot list tokens");
}

#[test]
fn join_tokens_and_agent_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/ferry.db", dir.path().display());
    let join = |extra: &[&str]| {
        let mut args = vec!["token", "create", "--kind", "join", "--database-url", &db];
        args.extend_from_slice(extra);
        finish(ferry().args(args))
    };
    let out = join(&["--cluster", "FS-NEW"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("no cluster")
    );

    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = ferry::store::open(&db).await.unwrap();
        store
            .create_cluster(&ferry::model::NewCluster {
                name: "FS-NEW".into(),
                os: ferry::model::OsGeneration::Ws2022,
                description: String::new(),
                discovery_interval_seconds: None,
            })
            .await
            .unwrap();
    });
    let out = join(&["--cluster", "FS-NEW", "--ttl", "10m", "--uses", "3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("3 use(s)"), "{err}");
    let token = String::from_utf8(out.stdout).unwrap();
    assert!(token.trim().starts_with("fyj_"), "{token}");

    for (args, complaint) in [
        (vec!["--cluster", "FS-NEW", "--role", "admin"], "--role"),
        (vec![], "--cluster"),
    ] {
        let out = join(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(complaint), "{err}");
    }
    let out = finish(ferry().args(["token", "create", "--name", "x", "--database-url", &db]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("--role"));

    let state = dir.path().join("agent");
    let agent = |extra: &[&str]| {
        let mut args = vec![
            "agent",
            "--server",
            "http://127.0.0.1:9",
            "--cluster",
            "FS-NEW",
            "--node",
            "N1",
            "--state-dir",
            state.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        finish(ferry().args(args))
    };
    let out = agent(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("--join-token")
    );
    let out = agent(&["--join-token", "fyj_x", "--driver", "bash"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("--driver"));
    let out = agent(&["--join-token", "fyj_x", "--ca", "/etc/ssl/ca.pem"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("TLS"));
}

/// The docker files only set variables the binary reads, and run a real subcommand.
#[test]
fn docker_files_match_the_binary() {
    let known: Vec<String> = ferry::config::KEYS
        .iter()
        .map(|k| format!("FERRY_{}", k.to_uppercase()))
        .collect();
    for file in ["docker/Dockerfile", "docker/compose.yaml"] {
        let text =
            std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let mut rest = text.as_str();
        let mut found = 0;
        while let Some(i) = rest.find("FERRY_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            assert!(
                known.contains(&name),
                "{file} sets {name}, which ferry does not read"
            );
            found += 1;
            rest = &rest[i + name.len()..];
        }
        assert!(found >= 3, "{file}");
        assert!(text.contains("server"), "{file} runs `ferry server`");
    }
    let help = ferry().args(["server", "--help"]).output().unwrap();
    assert!(help.status.success());
}

#[test]
fn skeleton_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    for d in ["a/b/c", "a/with space", "x"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    std::fs::write(src.join("a/file.txt"), "not copied").unwrap();
    let dst = dir.path().join("dst");
    let log = dir.path().join("skeleton.log");
    let out = finish(
        ferry()
            .arg("skeleton")
            .arg(&src)
            .arg(&dst)
            .args(["--depth", "3", "--log"])
            .arg(&log),
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("passed"), "{err}");
    assert!(dst.join("a/b").is_dir() && dst.join("a/with space").is_dir());
    // Level 4 is beyond --depth 3; files are never copied.
    assert!(!dst.join("a/b/c").exists() && !dst.join("a/file.txt").exists());
    assert!(log.exists());

    // A destination under a regular file can be neither created nor verified.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "file").unwrap();
    let out = finish(
        ferry()
            .arg("skeleton")
            .arg(&src)
            .arg(blocker.join("dst"))
            .args(["--depth", "2"]),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for bad in [
        vec!["skeleton".to_string(), src.display().to_string()],
        vec![
            "skeleton".into(),
            src.display().to_string(),
            dst.display().to_string(),
            "--depth".into(),
            "0".into(),
        ],
        vec![
            "skeleton".into(),
            src.display().to_string(),
            dst.display().to_string(),
            "--depth".into(),
            "x".into(),
        ],
    ] {
        let out = finish(ferry().args(&bad));
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn sim_create_writes_a_cluster_the_sim_driver_opens() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("FS-OLD");
    let args = |extra: &[&str]| {
        let mut cmd = ferry();
        cmd.args(["sim", "create", "--dir"])
            .arg(&dir)
            .args([
                "--cluster",
                "FS-OLD",
                "--os",
                "ws2003",
                "--nodes",
                "2",
                "--groups",
                "3",
            ])
            .args(["--shares", "5", "--seed", "7"])
            .args(extra);
        cmd
    };
    let out = finish(&mut args(&[]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("FS-OLD") && text.contains("3 groups"),
        "{text}"
    );

    let state = ferry::sim::load_state(&dir).unwrap();
    assert_eq!(state.cluster, "FS-OLD");
    assert_eq!(state.nodes.len(), 2);
    assert_eq!(state.nodes[0].name, "FS-OLD-n1");
    ferry::agent::driver::sim::SimDriver::open(&dir).unwrap();

    assert_eq!(state.latency.default_ms, 5);
    assert!(!state.letters_repeat);

    // Refused without --force, replaced with it.
    assert_eq!(finish(&mut args(&[])).status.code(), Some(1));
    assert_eq!(finish(&mut args(&["--force"])).status.code(), Some(0));

    // A benchmark's cluster: instant operations, drive letters free to repeat.
    let out = finish(&mut args(&[
        "--force",
        "--latency-ms",
        "0",
        "--letters-repeat",
    ]));
    assert_eq!(out.status.code(), Some(0));
    let state = ferry::sim::load_state(&dir).unwrap();
    assert_eq!(state.latency.default_ms, 0);
    assert!(
        state.latency.per_op.is_empty(),
        "{:?}",
        state.latency.per_op
    );
    assert!(state.letters_repeat);

    let out = finish(ferry().args(["sim", "create", "--dir"]).arg(&dir).args([
        "--cluster",
        "C",
        "--os",
        "nt4",
    ]));
    assert_eq!(out.status.code(), Some(2));
}

/// `ferry demo --exit`: the whole migration on simulated clusters, through the binary, ending
/// with the proof line and exit code 0.
#[test]
fn the_demo_migrates_every_group_and_verifies_every_share() {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let output = finish(
        ferry()
            .args(["demo", "--exit", "--shares", "20", "--dir"])
            .arg(dir.path())
            .args(["--http-addr", &free(), "--grpc-addr", &free()]),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("direct hop refused"), "{stdout}");
    assert!(stdout.contains("KB 983840"), "{stdout}");
    assert!(stdout.contains("verified 60/60 shares"), "{stdout}");
    assert!(
        stdout.contains("online_interim x2"),
        "the Kerberos retry shows: {stdout}"
    );
    assert!(
        stdout.contains("web console at http://127.0.0.1:") && stdout.contains("/console/"),
        "the demo says where its console is: {stdout}"
    );
}

/// A `ferry server` process and the addresses it printed; killed when dropped, so a failing
/// test leaves no server behind.
struct Server {
    child: std::process::Child,
    /// `host:port` of REST.
    rest: String,
    /// `host:port` of gRPC, which agents dial.
    grpc: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `ferry server` process on free loopback ports over `db`, with an admin bootstrap token when
/// given.
fn spawn_server(db: &str, bootstrap_token: Option<&str>) -> Server {
    let mut cmd = ferry();
    cmd.args([
        "server",
        "--http-addr",
        "127.0.0.1:0",
        "--grpc-addr",
        "127.0.0.1:0",
    ])
    .args(["--database-url", db])
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if let Some(token) = bootstrap_token {
        cmd.env("FERRY_BOOTSTRAP_TOKEN", token);
    }
    let mut server = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "ferry server: REST on http://A (docs at /docs, web console at /console/), gRPC on http://B"
    let mut addresses = line
        .split("://")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next());
    let (Some(rest), Some(grpc)) = (addresses.next(), addresses.next()) else {
        panic!("server did not print its addresses: {line:?}");
    };
    Server {
        rest: rest.to_string(),
        grpc: grpc.to_string(),
        child: server,
    }
}

/// Sends a JSON request to a running server and returns the status.
fn http_send(addr: &str, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    (status, body.to_string())
}

/// `ferry job ...` against a real server process: plan, submit, pause, resume, cancel, watch,
/// and the exit codes pipelines rely on (0 success, 1 job failed or cancelled, 2 refused or bad
/// input, 3 unreachable).
#[test]
fn job_verbs_and_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/ferry.db", dir.path().display());
    let token = "cli-job-test-token-0123456789";
    let server = spawn_server(&db, Some(token));
    let addr = server.rest.clone();
    for (name, os) in [("OLD", "ws2003"), ("MID", "ws2008"), ("NEW", "ws2008r2")] {
        let body = format!(r#"{{"name":"{name}","os":"{os}"}}"#);
        assert_eq!(
            http_send(&addr, "POST", "/v1/clusters", token, &body).0,
            201
        );
    }
    let inventory = r#"{"groups":[{"name":"FS1","state":"online",
        "resources":[{"name":"Disk F:","kind":"physical_disk","state":"online"}],
        "shares":[{"name":"Data","path":"F:\\Data"}]}]}"#;
    let (status, body) = http_send(&addr, "PUT", "/v1/clusters/OLD/inventory", token, inventory);
    assert!(status == 201, "{status} {body}");

    let job = |args: &[&str]| {
        finish(ferry().arg("job").args(args).args([
            "--server",
            &format!("http://{addr}"),
            "--token",
            token,
        ]))
    };
    let request = dir.path().join("request.toml");
    std::fs::write(&request, "source = \"OLD\"\ntarget = \"NEW\"\n").unwrap();
    let file = request.to_str().unwrap();

    let out = job(&["plan", "-f", file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("route: OLD -> MID -> NEW"), "{stdout}");
    assert!(stdout.contains("KB 983840"), "{stdout}");
    let out = job(&["plan", "-f", file, "--output", "json"]);
    assert!(out.status.success());
    let plan = json_stdout(&out);
    assert_eq!(plan["route"], serde_json::json!(["OLD", "MID", "NEW"]));
    assert_eq!(plan["runnable"], true);

    let out = job(&["submit", "-f", file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let id = stdout
        .split_whitespace()
        .nth(1)
        .expect("job <id> created")
        .to_string();
    // A second job on the same group is refused by the server: exit 2, naming the first.
    let out = job(&["submit", "-f", file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&id));

    // The group is held by the first job now: the plan has a failing check, exit 1, and the
    // JSON still says why.
    let out = job(&["plan", "-f", file, "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let plan = json_stdout(&out);
    assert_eq!(plan["runnable"], false);

    for verb in ["pause", "resume"] {
        let out = job(&[verb, &id]);
        assert!(out.status.success(), "{verb}");
    }
    let out = job(&["pause", &id, "--output", "json"]);
    assert!(out.status.success());
    assert_eq!(json_stdout(&out)["id"], id.as_str());
    let out = job(&["resume", &id, "-o", "json"]);
    assert!(out.status.success());
    let out = job(&["cancel", &id]);
    assert!(out.status.success());
    // Watching a cancelled job ends at once with exit 1 and says so.
    let out = job(&["watch", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cancelled"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = job(&["watch", &id, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_stdout(&out)["state"], "cancelled");

    std::fs::write(&request, "source = \"OLD\"\nbogus = 1\n").unwrap();
    assert_eq!(job(&["plan", "-f", file]).status.code(), Some(2));
    assert_eq!(job(&["watch", "not-a-uuid"]).status.code(), Some(2));
    let unreachable = finish(ferry().args([
        "job",
        "watch",
        &id,
        "--server",
        "http://127.0.0.1:9",
        "--token",
        token,
    ]));
    assert_eq!(unreachable.status.code(), Some(3));
    let tokenless =
        finish(ferry().args(["job", "watch", &id, "--server", &format!("http://{addr}")]));
    assert_eq!(tokenless.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&tokenless.stderr).contains("FERRY_TOKEN"));
}

/// Stdout of a `--output json` run: JSON and nothing else.
fn json_stdout(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `ferry ARGS --server ADDR --token TOKEN` to its end.
fn against(addr: &str, token: &str, args: &[&str]) -> std::process::Output {
    finish(
        ferry()
            .args(args)
            .args(["--server", &format!("http://{addr}"), "--token", token]),
    )
}

/// A new API token of `role`, made by the admin `token` through the API.
fn api_token(addr: &str, admin: &str, role: &str) -> String {
    let body = format!(r#"{{"name":"cli-{role}","role":"{role}"}}"#);
    let (status, body) = http_send(addr, "POST", "/v1/tokens", admin, &body);
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    created["token"].as_str().unwrap().to_string()
}

/// Every verb that talks to a server: `cluster create|list|show|diff`, `agents`, `validate`,
/// `perf volume|redirected`, with the exit codes scripts rely on (0 done, 2 bad arguments,
/// refused or no token, 3 unreachable) and `--output json` printing the API's JSON only.
#[test]
fn operator_verbs_and_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/ferry.db", dir.path().display());
    let admin = "cli-operator-test-token-0123456789";
    let server = spawn_server(&db, Some(admin));
    let addr = server.rest.as_str();
    let viewer = api_token(addr, admin, "viewer");
    let run = |args: &[&str]| against(addr, admin, args);

    let out = run(&[
        "cluster",
        "create",
        "FS-OLD",
        "--os",
        "ws2003",
        "--description",
        "the 2003 file servers",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("FS-OLD"), "{}", stdout(&out));
    let out = run(&[
        "cluster", "create", "FS-NEW", "--os", "ws2008r2", "-o", "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_stdout(&out)["name"], "FS-NEW");
    // The name is taken: the server refuses (409).
    assert_eq!(
        run(&["cluster", "create", "FS-OLD", "--os", "ws2003"])
            .status
            .code(),
        Some(2)
    );
    let out = run(&["cluster", "create", "FS-X", "--os", "nt4"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("ws2003"), "{}", stderr(&out));
    let out = against(
        addr,
        &viewer,
        &["cluster", "create", "FS-X", "--os", "ws2003"],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "a viewer cannot register a cluster"
    );

    // No token: refused before any request, saying how to get one.
    for env_token in [None, Some("")] {
        let mut cmd = ferry();
        cmd.args(["cluster", "list", "--server", &format!("http://{addr}")]);
        if let Some(token) = env_token {
            cmd.env("FERRY_TOKEN", token);
        }
        let out = finish(&mut cmd);
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(
            err.contains("no API token") && err.contains("ferry token create"),
            "{err}"
        );
    }
    let out = finish(ferry().args([
        "cluster",
        "list",
        "--server",
        "http://127.0.0.1:9",
        "--token",
        admin,
    ]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = finish(ferry().args(["agents", "--server", "http://127.0.0.1:9", "--token", admin]));
    assert_eq!(out.status.code(), Some(3));
    for bad in ["ftp://x", "127.0.0.1:8080", "http://[::1"] {
        let out = finish(ferry().args(["cluster", "list", "--server", bad, "--token", admin]));
        assert_eq!(
            out.status.code(),
            Some(2),
            "a bad address is a bad argument: {bad}"
        );
    }

    let out = against(addr, &viewer, &["cluster", "list"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("NAME") && text.contains("FS-OLD") && text.contains("ws2008r2"));
    let out = run(&["cluster", "list", "--output", "json"]);
    let names: Vec<String> = json_stdout(&out)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"FS-OLD".to_string()));

    // Two snapshots: one group with one share, then a second share and a changed permission.
    let inventory = |shares: &str| {
        format!(
            r#"{{"groups":[{{"name":"FS1","state":"online",
            "resources":[{{"name":"Disk F:","kind":"physical_disk","state":"online"}}],
            "shares":[{shares}]}}]}}"#
        )
    };
    let data = r#"{"name":"Data","path":"F:\\Data","permissions":[{"principal":"CORP\\Finance","type":"allow","access":"read"}]}"#;
    let data_changed = r#"{"name":"Data","path":"F:\\Data","permissions":[{"principal":"CORP\\Finance","type":"allow","access":"change"}]}"#;
    let home = r#"{"name":"Home","path":"F:\\Home"}"#;
    for shares in [data.to_string(), format!("{data_changed},{home}")] {
        let (status, body) = http_send(
            addr,
            "PUT",
            "/v1/clusters/FS-OLD/inventory",
            admin,
            &inventory(&shares),
        );
        assert_eq!(status, 201, "{body}");
    }

    let out = against(addr, &viewer, &["cluster", "show", "FS-OLD"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("latest snapshot: 2"), "{text}");
    assert!(text.contains("FS1"), "{text}");
    assert!(text.contains("the 2003 file servers"), "{text}");
    let out = run(&["cluster", "show", "FS-OLD", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let shown = json_stdout(&out);
    assert_eq!(shown["cluster"]["name"], "FS-OLD");
    assert_eq!(shown["groups"][0]["share_count"], 2);
    assert_eq!(shown["latest_snapshot"]["number"], 2);
    assert_eq!(shown["agents"], serde_json::json!([]));
    assert_eq!(run(&["cluster", "show", "FS-NOPE"]).status.code(), Some(2));

    let out = run(&["cluster", "diff", "FS-OLD", "1", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("1 added"), "{text}");
    assert!(text.contains("groups/FS1/shares/Home"), "{text}");
    assert!(text.contains(r#""read" -> "change""#), "{text}");
    let out = run(&["cluster", "diff", "FS-OLD", "1", "2", "--output", "json"]);
    assert_eq!(json_stdout(&out)["summary"]["added"], 1);
    assert_eq!(
        run(&["cluster", "diff", "FS-OLD", "1", "9"]).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&["cluster", "diff", "FS-OLD", "x", "2"]).status.code(),
        Some(2)
    );

    let out = run(&["agents"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("no agents"), "{}", stdout(&out));
    let out = run(&["agents", "--cluster", "FS-OLD", "-o", "json"]);
    assert_eq!(json_stdout(&out)["items"], serde_json::json!([]));
    assert_eq!(
        run(&["agents", "--cluster", "FS-NOPE"]).status.code(),
        Some(2)
    );

    // Without --wait the validation is asked for and left to the agents: exit 0.
    let out = run(&["validate", "FS-NEW"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("gathering"), "{}", stdout(&out));
    let out = run(&["validate", "FS-NEW", "-o", "json"]);
    assert_eq!(json_stdout(&out)["state"], "gathering");
    assert_eq!(run(&["validate", "FS-NOPE"]).status.code(), Some(2));
    let out = against(addr, &viewer, &["validate", "FS-NEW"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "validating is an operator's verb"
    );

    // Perf: two nodes and the storage server on one CSV volume, a few minutes ago.
    let volume = r"C:\ClusterStorage\Volume1";
    let at = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let sample = |node: &str, source: &str, value: f64| {
        serde_json::json!({"node": node, "volume": volume, "counter": "transfers_per_sec",
            "source": source, "at": at, "value": value})
    };
    let batch = serde_json::json!({"cluster": "FS-NEW", "samples": [
        sample("FS-NEW-n1", "node", 867.0),
        sample("FS-NEW-n2", "node", 715.0),
        sample("SAN1", "storage", 1505.0),
    ]});
    let (status, body) = http_send(addr, "POST", "/v1/perf/samples", admin, &batch.to_string());
    assert_eq!(status, 200, "{body}");
    let out = against(
        addr,
        &viewer,
        &["perf", "volume", "FS-NEW", "--volume", volume],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("FS-NEW-n1") && text.contains("FS-NEW-n2") && text.contains("1582.0"),
        "{text}"
    );
    let out = run(&[
        "perf", "volume", "FS-NEW", "--volume", volume, "--step", "10s", "-o", "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let view = json_stdout(&out);
    assert_eq!(view["nodes"], serde_json::json!(["FS-NEW-n1", "FS-NEW-n2"]));
    assert_eq!(view["step_ms"], 10_000);
    let out = run(&[
        "perf",
        "volume",
        "FS-NEW",
        "--volume",
        volume,
        "--from",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--from"), "{}", stderr(&out));
    let out = run(&[
        "perf",
        "volume",
        "FS-NEW",
        "--volume",
        volume,
        "--step",
        "fortnightly",
    ]);
    assert_eq!(out.status.code(), Some(2), "the server refuses the step");
    assert_eq!(run(&["perf", "volume", "FS-NEW"]).status.code(), Some(2));
    assert_eq!(
        run(&["perf", "volume", "FS-NOPE", "--volume", volume])
            .status
            .code(),
        Some(2)
    );
    let out = run(&["perf", "redirected", "FS-NEW", "--volume", volume]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("no redirected I/O"),
        "{}",
        stdout(&out)
    );
    let out = run(&[
        "perf",
        "redirected",
        "FS-NEW",
        "--volume",
        volume,
        "-o",
        "json",
    ]);
    assert_eq!(json_stdout(&out), serde_json::json!([]));
    let out = finish(ferry().args([
        "perf",
        "redirected",
        "FS-NEW",
        "--server",
        "http://127.0.0.1:9",
        "--token",
        admin,
    ]));
    assert_eq!(out.status.code(), Some(3));
}

/// `ferry sim present-disk` and `ferry sim redirect` on simulated clusters: the target's disk
/// name as the last line, the switch landing in the state file, exit 2 for a disk or volume
/// that does not exist.
#[test]
fn sim_present_disk_and_redirect() {
    let root = tempfile::tempdir().unwrap();
    let old = root.path().join("FS-OLD");
    let new = root.path().join("FS-NEW");
    for (dir, name, os) in [(&old, "FS-OLD", "ws2003"), (&new, "FS-NEW", "ws2008r2")] {
        let out = finish(ferry().args(["sim", "create", "--dir"]).arg(dir).args([
            "--cluster",
            name,
            "--os",
            os,
            "--groups",
            "2",
            "--shares",
            "2",
        ]));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let source_disk = ferry::sim::load_state(&old).unwrap().disks[0].name.clone();
    let present = |disk: &str, extra: &[&str]| {
        finish(
            ferry()
                .args(["sim", "present-disk", "--dir"])
                .arg(&new)
                .arg("--from")
                .arg(&old)
                .args(["--disk", disk])
                .args(extra),
        )
    };
    let out = present(&source_disk, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let name = text.lines().last().unwrap().to_string();
    let target = ferry::sim::load_state(&new).unwrap();
    let presented = target
        .disk(&name)
        .expect("the printed name is a disk of the target");
    assert_eq!(
        presented.signature,
        ferry::sim::load_state(&old).unwrap().disks[0].signature
    );
    // Presenting the same LUN again names the same disk.
    let out = present(&source_disk, &["--output", "json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_stdout(&out)["disk"], name.as_str());

    let out = present("Cluster Disk 99", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&source_disk), "{}", stderr(&out));
    let out = finish(
        ferry()
            .args(["sim", "present-disk", "--dir"])
            .arg(&new)
            .arg("--from")
            .arg(root.path().join("nowhere"))
            .args(["--disk", &source_disk]),
    );
    assert_eq!(out.status.code(), Some(2));

    let volume = r"C:\ClusterStorage\Volume1";
    let redirect = |dir: &std::path::Path, volume: &str, switch: &str| {
        finish(
            ferry()
                .args(["sim", "redirect", "--dir"])
                .arg(dir)
                .args(["--volume", volume, switch]),
        )
    };
    let redirected = || {
        ferry::sim::load_state(&new)
            .unwrap()
            .perf
            .volumes
            .iter()
            .find(|v| v.name == volume)
            .unwrap()
            .redirected
    };
    let out = redirect(&new, volume, "on");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(redirected());
    let out = redirect(&new, &volume.to_lowercase(), "off");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!redirected());
    let out = redirect(&new, r"C:\ClusterStorage\Volume9", "on");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(volume), "{}", stderr(&out));
    assert_eq!(
        redirect(&old, volume, "on").status.code(),
        Some(2),
        "ws2003 has no CSV"
    );
    assert_eq!(redirect(&new, volume, "maybe").status.code(), Some(2));
}

/// Kills the agent processes a test started, whatever way the test ends.
struct Agents(Vec<std::process::Child>);

impl Drop for Agents {
    fn drop(&mut self) {
        for agent in &mut self.0 {
            let _ = agent.kill();
            let _ = agent.wait();
        }
    }
}

/// `ferry cluster discover --wait` and `ferry validate --wait` with a real agent of a simulated
/// cluster: a new snapshot, then the same one unchanged; a report whose exit code follows its
/// verdict.
#[test]
fn discover_and_validate_through_a_real_agent() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/ferry.db", dir.path().display());
    let admin = "cli-discovery-test-token-0123456789";
    let server = spawn_server(&db, Some(admin));
    let addr = server.rest.as_str();
    let run = |args: &[&str]| against(addr, admin, args);

    let sim = dir.path().join("sims").join("FS-NEW");
    let out = finish(ferry().args(["sim", "create", "--dir"]).arg(&sim).args([
        "--cluster",
        "FS-NEW",
        "--os",
        "ws2008r2",
        "--nodes",
        "2",
        "--groups",
        "2",
        "--shares",
        "3",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&["cluster", "create", "FS-NEW", "--os", "ws2008r2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (status, body) = http_send(
        addr,
        "POST",
        "/v1/join-tokens",
        admin,
        r#"{"cluster":"FS-NEW","uses":1}"#,
    );
    assert_eq!(status, 201, "{body}");
    let join: serde_json::Value = serde_json::from_str(&body).unwrap();
    let agent = ferry()
        .args(["agent", "--server", &format!("http://{}", server.grpc)])
        .args(["--cluster", "FS-NEW", "--node", "FS-NEW-n1", "--state-dir"])
        .arg(dir.path().join("agent-n1"))
        .args(["--driver", "sim", "--sim-dir"])
        .arg(&sim)
        .args(["--log-level", "warn"])
        .env("FERRY_JOIN_TOKEN", join["token"].as_str().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _agents = Agents(vec![agent]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = run(&["agents", "--cluster", "FS-NEW", "-o", "json"]);
        if json_stdout(&out)["items"][0]["state"] == "connected" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not connect"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = run(&["cluster", "show", "FS-NEW"]);
    assert!(stdout(&out).contains("connected"), "{}", stdout(&out));

    let out = run(&["cluster", "discover", "FS-NEW", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("completed"), "{text}");
    assert!(text.contains("snapshot 1 (new)"), "{text}");
    let out = run(&["cluster", "discover", "FS-NEW", "--wait", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let discovery = json_stdout(&out);
    assert_eq!(discovery["state"], "completed");
    assert_eq!(discovery["snapshot"], 1);
    assert_eq!(discovery["created"], false);
    let out = run(&["cluster", "discover", "FS-NEW", "--wait"]);
    assert!(
        stdout(&out).contains("snapshot 1 (unchanged)"),
        "{}",
        stdout(&out)
    );
    let out = run(&["cluster", "show", "FS-NEW", "-o", "json"]);
    assert_eq!(json_stdout(&out)["latest_snapshot"]["number"], 1);
    assert_eq!(
        run(&["cluster", "discover", "FS-NOPE"]).status.code(),
        Some(2)
    );

    let out = run(&["validate", "FS-NEW", "--wait", "--output", "json"]);
    let report = json_stdout(&out);
    assert_eq!(report["state"], "completed", "{report}");
    let expected = if report["overall"] == "fail" { 1 } else { 0 };
    assert_eq!(out.status.code(), Some(expected), "{report}");
    let out = run(&["validate", "FS-NEW", "--wait"]);
    assert_eq!(out.status.code(), Some(expected), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("overall: "), "{text}");
    let first = &report["findings"][0];
    assert!(
        text.contains(first["title"].as_str().unwrap()),
        "every finding is printed: {text}"
    );

    // A node with NTLM restricted fails the validation: exit 1, the failing rule named.
    ferry::sim::update_state(&sim, |s| s.nodes[1].ntlm_enabled = false).unwrap();
    let out = run(&["validate", "FS-NEW", "--wait"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("overall: FAIL"), "{}", stdout(&out));
    assert!(stdout(&out).contains("remedy:"), "{}", stdout(&out));
    assert!(stderr(&out).contains("ntlm_enabled"), "{}", stderr(&out));

    // The agent cannot read the cluster: the discovery fails, exit 1 with its error.
    ferry::sim::inject_fault(
        &sim,
        ferry::sim::SimOp::Inventory,
        ferry::sim::FaultSpec::fail(1, ferry::protocol::report::driver::ErrorKind::Failed),
    )
    .unwrap();
    let out = run(&["cluster", "discover", "FS-NEW", "--wait"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("failed"), "{}", stdout(&out));
    assert!(stderr(&out).contains("failed:"), "{}", stderr(&out));
}

/// The README's "Migrate by hand" block, run as it stands (only the listening ports changed, so
/// the test can run beside others) in an empty directory: the server and five agents as
/// processes, every step through the command line, ending with every share verified.
#[test]
fn the_readme_migration_by_hand_runs_and_verifies_every_share() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Migrate by hand\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a `## Migrate by hand` section");
    let script = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the section has a sh block");
    let ports = "export FERRY_HTTP_ADDR=127.0.0.1:8080 FERRY_GRPC_ADDR=127.0.0.1:50051";
    assert!(script.contains(ports), "the block sets the listening ports");
    let (http, grpc) = (common::free_port(), common::free_port());
    let script = script.replace(
        ports,
        &format!("export FERRY_HTTP_ADDR=127.0.0.1:{http} FERRY_GRPC_ADDR=127.0.0.1:{grpc}"),
    );

    let dir = tempfile::tempdir().unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ferry"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = without_ferry_env(Command::new("bash"))
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a failure leaves no server or agent behind.
        .process_group(0)
        .spawn()
        .unwrap();
    let group = rustix::process::Pid::from_child(&child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            panic!("the migration by hand did not end within 300 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let log = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver.log:\n{}",
        out.status.code(),
        log("server.log")
    );
    assert!(stdout.contains("verified 150/150 shares"), "{stdout}");
    assert!(stdout.contains("snapshot 1 (new)"), "{stdout}");
    assert!(
        stdout.contains("route: FS-OLD -> FS-MID -> FS-NEW"),
        "{stdout}"
    );
}

/// `--ca` (`FERRY_CA`) and `https://` servers, against a real server behind a TLS-terminating
/// proxy whose CA is made here: pinned, the verbs work and `job watch` follows the event stream
/// through the proxy, resuming after the proxy drops the connection; without the pin (or pinning
/// another CA) the server cannot be reached (exit 3); a CA file that cannot be read or holds no
/// certificate is a bad argument (exit 2), before anything is sent.
#[test]
fn https_servers_with_a_pinned_ca() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/ferry.db", dir.path().display());
    let token = "cli-https-test-token-0123456789";
    let server = spawn_server(&db, Some(token));
    let addr = server.rest.clone();
    let pki = common::TestPki::new("cli");
    let ca = pki.write_ca(dir.path(), "ca.pem");
    let other_ca = common::TestPki::new("other").write_ca(dir.path(), "other-ca.pem");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    // The proxy runs on this runtime's threads while the test drives the binary.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let proxy = runtime.block_on(common::TlsProxy::start(&pki, addr.parse().unwrap()));
    let https = format!("https://localhost:{}", proxy.addr.port());
    let over_https = |args: &[&str]| {
        let mut cmd = ferry();
        cmd.args(args).args(["--server", &https, "--token", token]);
        cmd
    };
    let ca_arg = ca.to_str().unwrap();

    let out =
        finish(over_https(&["cluster", "create", "OLD", "--os", "ws2003"]).args(["--ca", ca_arg]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out =
        finish(over_https(&["cluster", "create", "NEW", "--os", "ws2008"]).env("FERRY_CA", &ca));
    assert_eq!(
        out.status.code(),
        Some(0),
        "FERRY_CA pins too: {}",
        stderr(&out)
    );
    let out = finish(&mut over_https(&[
        "cluster", "list", "-o", "json", "--ca", ca_arg,
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_stdout(&out)["items"].as_array().unwrap().len(), 2);

    // Unknown CA: the public roots do not vouch for it, nor does another pinned CA.
    let out = finish(&mut over_https(&["cluster", "list"]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("certificate"), "{}", stderr(&out));
    let out = finish(over_https(&["cluster", "list"]).args(["--ca", other_ca.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // Bad CA files are bad arguments, named as such.
    for (file, why) in [
        (dir.path().join("missing.pem"), "cannot be read"),
        (junk.clone(), "no PEM certificate"),
    ] {
        let out = finish(over_https(&["cluster", "list"]).args(["--ca", file.to_str().unwrap()]));
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("--ca") && stderr(&out).contains(why),
            "{}",
            stderr(&out)
        );
    }
    let out = finish(over_https(&["cluster", "list"]).env("FERRY_CA", &junk));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // `job watch` over HTTPS: the event stream survives the proxy dropping it.
    let inventory = r#"{"groups":[{"name":"FS1","state":"online",
        "resources":[{"name":"Disk F:","kind":"physical_disk","state":"online"}],
        "shares":[{"name":"Data","path":"F:\\Data"}]}]}"#;
    let (status, body) = http_send(&addr, "PUT", "/v1/clusters/OLD/inventory", token, inventory);
    assert_eq!(status, 201, "{body}");
    let (status, body) = http_send(
        &addr,
        "POST",
        "/v1/jobs",
        token,
        r#"{"source":"OLD","target":"NEW"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let job: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let mut watch = over_https(&["job", "watch", &id, "--ca", ca_arg])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, printed) = std::sync::mpsc::channel::<String>();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match printed.recv_timeout(left) {
                Ok(line) if line.contains(what) => return,
                Ok(_) => {}
                Err(e) => panic!("`job watch` did not print `{what}`: {e}"),
            }
        }
    };
    wait_for("job: ");
    // One connection for the job's detail, one for its events; the cut drops both.
    let before_cut = proxy.connections();
    proxy.cut();
    let (status, body) = http_send(&addr, "POST", &format!("/v1/jobs/{id}/pause"), token, "{}");
    assert_eq!(status, 200, "{body}");
    wait_for("job: paused");
    assert!(
        proxy.connections() > before_cut,
        "the pause arrived on a new connection"
    );
    let (status, body) = http_send(&addr, "POST", &format!("/v1/jobs/{id}/cancel"), token, "{}");
    assert_eq!(status, 200, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let code = loop {
        if let Some(code) = watch.try_wait().unwrap() {
            break code.code();
        }
        if std::time::Instant::now() > deadline {
            watch.kill().unwrap();
            panic!("`job watch` did not end after the cancel");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    watch
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(code, Some(1), "a cancelled job: {err}");
    assert!(err.contains("cancelled"), "{err}");
    drop(runtime);
}
