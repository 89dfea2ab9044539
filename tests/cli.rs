//! The `ferry` binary as scripts use it: exit codes, messages, the token command, and a real
//! server process answering over TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn ferry() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    // The caller's environment must not leak into these checks.
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

    let (mut server, addr) = spawn_server(&db, None);

    let (status, body) = http_get(&addr, "/v1/clusters", &token);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"items\""), "{body}");
    let (status, _) = http_get(&addr, "/v1/clusters", "fy_wrong");
    assert_eq!(status, 401);
    let (status, _) = http_get(&addr, "/v1/tokens", &token);
    assert_eq!(status, 403, "a viewer cannot list tokens");
    server.kill().unwrap();
    server.wait().unwrap();
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

    // Refused without --force, replaced with it.
    assert_eq!(finish(&mut args(&[])).status.code(), Some(1));
    assert_eq!(finish(&mut args(&["--force"])).status.code(), Some(0));

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
}

/// A `ferry server` process on free loopback ports over `db`, with an admin bootstrap token when
/// given; returns it with the REST address it printed.
fn spawn_server(db: &str, bootstrap_token: Option<&str>) -> (std::process::Child, String) {
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
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("server did not print its address: {line:?}"))
        .to_string();
    (server, addr)
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
    let (mut server, addr) = spawn_server(&db, Some(token));
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

    for verb in ["pause", "resume"] {
        let out = job(&[verb, &id]);
        assert!(out.status.success(), "{verb}");
    }
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
    server.kill().unwrap();
    server.wait().unwrap();
}
