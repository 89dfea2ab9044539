//! Agents touch only what they are allowed: a real server on each database, simulated clusters
//! in a temporary directory, in-process agents. The server refuses what it can see is wrong
//! (422 on REST, `InvalidArgument` on gRPC, naming the field); what it cannot see (where a path
//! leads on the node) the agent refuses with kind `forbidden`, and the server audits each such
//! refusal as `task.forbidden`. A task stored behind the server's back (straight into the store,
//! then delivered on the agent's gRPC stream like any other) is refused by the agent too.
//!
//! The PowerShell driver's rules (drive letters, UNC paths) are text, checked without Windows in
//! `tests/powershell.rs` and the agent crate's unit tests (`confine`, `driver::powershell`).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use tonic::Code;

use ferry::agent::exec::{Builtin, DriverKind, NodeExecutor};
use ferry::config::Config;
use ferry::model::{Action, OsGeneration};
use ferry::protocol::pb;
use ferry::protocol::pb::agent_admin_service_client::AgentAdminServiceClient;
use ferry::server::{RunningServer, start_with_store};
use ferry::sim::{SimCreateOptions, create_sim_cluster, disk_dir, load_state};
use ferry::store::{NewTask, Store};

use common::{BOOTSTRAP, PATIENCE, authed, eventually, on_each_backend, rest};

struct Setup {
    server: RunningServer,
    store: Arc<dyn Store>,
    /// Simulated clusters, agents' state directories, and folders outside every allowed one.
    dir: tempfile::TempDir,
    agents: Vec<common::AgentRun>,
}

impl Setup {
    async fn start(store: Arc<dyn Store>) -> Self {
        let config = Config {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            bootstrap_token: Some(BOOTSTRAP.into()),
            agent_heartbeat_ms: 200,
            agent_lease_ms: 5000,
            agent_down_after_ms: 10_000,
            ..Default::default()
        };
        let server = start_with_store(&config, store.clone())
            .await
            .expect("server starts");
        Setup {
            server,
            store,
            dir: tempfile::tempdir().unwrap(),
            agents: Vec::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn state_dir(&self, cluster: &str) -> PathBuf {
        self.path(&format!("{cluster}.agent"))
    }

    /// Registers cluster `name` and answers a join token for one agent.
    async fn register(&self, name: &str, os: OsGeneration) -> String {
        let (status, body) = self
            .post("/v1/clusters", json!({"name": name, "os": os.as_str()}))
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = self
            .post("/v1/join-tokens", json!({"cluster": name, "uses": 1}))
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Starts a connected agent of cluster `name` running `builtin`; answers its id.
    async fn agent(&mut self, name: &str, os: OsGeneration, builtin: Builtin) -> String {
        let token = self.register(name, os).await;
        let executor = Arc::new(NodeExecutor::new(builtin).with_perf_interval(PATIENCE));
        let (id, run) = common::start_agent(
            self.server.grpc_addr,
            name,
            &format!("{name}-n1"),
            &self.state_dir(name),
            token,
            executor,
        )
        .await;
        self.agents.push(run);
        let this = &*self;
        let idr = &id;
        eventually("agent connected", move || async move {
            let (_, agent) = this.get(&format!("/v1/agents/{idr}")).await;
            (agent["state"] == "connected").then_some(())
        })
        .await;
        id
    }

    /// The simulated cluster `name` (two file server groups, so two lettered disks) with an
    /// agent given no `--allow-path`: it may touch the simulated cluster disks only.
    async fn sim_cluster(&mut self, name: &str) -> (String, PathBuf) {
        let mut o = SimCreateOptions::new(self.path("sims").join(name), name, OsGeneration::Ws2003);
        o.groups = 2;
        o.shares = 3;
        o.seed = 11;
        o.latency_ms = 0;
        create_sim_cluster(&o).expect("create simulated cluster");
        let builtin = Builtin::new(DriverKind::Sim, Some(o.dir.clone()));
        let id = self.agent(name, OsGeneration::Ws2003, builtin).await;
        (id, o.dir)
    }

    async fn stop(self) {
        for (stop, handle) in self.agents {
            let _ = stop.send(());
            let _ = tokio::time::timeout(PATIENCE, handle).await;
        }
        self.server.stop().await.expect("server stops cleanly");
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        rest(self.server.http_addr, "GET", path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        rest(self.server.http_addr, "POST", path, Some(body)).await
    }

    /// Waits for task `id` to end; answers it.
    async fn ended(&self, id: &str) -> Value {
        eventually(&format!("task {id} ends"), move || async move {
            let (_, task) = self.get(&format!("/v1/tasks/{id}")).await;
            matches!(task["state"].as_str(), Some("succeeded" | "failed")).then_some(task)
        })
        .await
    }

    async fn run(&self, agent: &str, action: Value) -> Value {
        let (status, task) = self
            .post(&format!("/v1/agents/{agent}/tasks"), action)
            .await;
        assert_eq!(status, 201, "{task}");
        self.ended(task["id"].as_str().unwrap()).await
    }

    /// Runs `action` and checks the agent refused it: kind `forbidden`, naming `field` and
    /// `path`. Answers the task's id.
    async fn refused(&self, agent: &str, action: Value, field: &str, path: &str) -> String {
        let task = self.run(agent, action).await;
        self.check_refused(&task, field, path)
    }

    fn check_refused(&self, task: &Value, field: &str, path: &str) -> String {
        assert_eq!(task["state"], "failed", "{task:#}");
        let error = &task["error"];
        assert_eq!(error["kind"], "forbidden", "{task:#}");
        assert_eq!(error["retryable"], false, "{task:#}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field} `{path}` refused: ")),
            "{message}"
        );
        task["id"].as_str().unwrap().to_owned()
    }

    /// Stores a task straight into the store, past the server's validation, for the agent's
    /// stream to deliver; answers the finished task.
    async fn behind_the_servers_back(&self, agent: &str, action: &Action) -> Value {
        let agent = self.store.get_agent(agent.parse().unwrap()).await.unwrap();
        let task = self
            .store
            .create_task(&NewTask {
                cluster_id: agent.cluster_id,
                node: &agent.node,
                agent_id: Some(agent.id),
                action,
                created_by: "test",
                id: None,
                lease_deadline: None,
            })
            .await
            .unwrap();
        self.ended(&task.id.to_string()).await
    }

    /// The `task.forbidden` audit records, oldest first.
    async fn forbidden_audit(&self) -> Vec<Value> {
        let (status, page) = self.get("/v1/audit?action=task.forbidden&limit=100").await;
        assert_eq!(status, 200, "{page}");
        let mut items = page["items"].as_array().unwrap().clone();
        items.reverse();
        items
    }
}

fn copy(source: impl AsRef<str>, destination: impl AsRef<str>, log_path: &str) -> Value {
    json!({"action": "skeleton_copy", "source": source.as_ref(),
           "destination": destination.as_ref(), "depth": 2, "log_path": log_path})
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

/// The letters of the simulated cluster's lettered disks, with their folders.
fn lettered_disks(sim: &Path) -> Vec<(String, PathBuf)> {
    let state = load_state(sim).unwrap();
    state
        .disks
        .iter()
        .filter_map(|d| Some((d.drive_letter.clone()?, disk_dir(sim, d))))
        .collect()
}

/// A character device (`/dev/null`'s numbers) when this runs as root, else a fifo: either way a
/// file that is not a folder, where a folder is expected.
fn special_file(path: &Path) -> &'static str {
    let made = std::process::Command::new("mknod")
        .arg(path)
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    if made {
        return "a character device";
    }
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    assert!(made, "mknod or mkfifo makes {}", path.display());
    "a fifo"
}

#[tokio::test]
async fn the_server_refuses_what_it_can_see_on_rest_and_grpc() {
    on_each_backend(|_, store| async move {
        let mut s = Setup::start(store).await;
        let (agent, _) = s.sim_cluster("OLD").await;
        for (body, field, rule) in [
            // The report's example: an operator token aiming the log at a database.
            (
                copy("/srv/in", "/srv/out", "/srv/precious.db"),
                "log_path",
                "plain file name",
            ),
            (
                copy("/srv/in", "/srv/out", "..\\precious.db"),
                "log_path",
                "plain file name",
            ),
            (
                copy("/srv/in", "/srv/out", "C:precious.db"),
                "log_path",
                "drive or a stream",
            ),
            (copy("/srv/in/../../etc", "/srv/out", ""), "source", "`..`"),
            (
                copy("F:\\", "F:\\Shares\\..\\..\\Windows", ""),
                "destination",
                "`..`",
            ),
            (copy("srv/in", "/srv/out", ""), "source", "absolute"),
            (copy("/dev/sda", "/srv/out", ""), "source", "`/dev`"),
            (
                copy("/srv/in", "/proc/self/root", ""),
                "destination",
                "`/proc`",
            ),
            (
                copy("\\\\.\\PhysicalDrive0", "F:\\", ""),
                "source",
                "device namespace",
            ),
            (copy("F:\\", "F:\\NUL", ""), "destination", "device name"),
        ] {
            let (status, problem) = s
                .post(&format!("/v1/agents/{agent}/tasks"), body.clone())
                .await;
            assert_eq!(status, 422, "{body}: {problem}");
            let errors = problem["errors"].as_array().unwrap();
            assert_eq!(errors.len(), 1, "{problem}");
            assert_eq!(errors[0]["field"], field, "{problem}");
            let message = errors[0]["message"].as_str().unwrap();
            assert!(message.contains(rule), "{body}: {message}");
        }
        // gRPC goes through the same validation.
        let channel =
            tonic::transport::Channel::from_shared(format!("http://{}", s.server.grpc_addr))
                .unwrap()
                .connect()
                .await
                .unwrap();
        let refused = AgentAdminServiceClient::new(channel)
            .run_task(authed(
                BOOTSTRAP,
                pb::RunTaskRequest {
                    agent_id: agent.clone(),
                    action: Some(
                        Action::SkeletonCopy {
                            source: "/srv/in".into(),
                            destination: "/srv/out".into(),
                            depth: 2,
                            log_path: "/srv/precious.db".into(),
                        }
                        .into(),
                    ),
                    idempotency_key: String::new(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains("log_path"), "{refused:?}");

        // Every refusal is in the audit log as a failed `task.run`; none reached the agent, so
        // none is a `task.forbidden`.
        let (_, page) = s
            .get(&format!(
                "/v1/audit?action=task.run&outcome=failure&target=agent:{agent}&limit=100"
            ))
            .await;
        assert_eq!(page["items"].as_array().unwrap().len(), 11, "{page:#}");
        assert!(s.forbidden_audit().await.is_empty());
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_agent_refuses_escapes_and_each_refusal_is_audited() {
    on_each_backend(|_, store| async move {
        let mut s = Setup::start(store).await;
        let (agent, sim) = s.sim_cluster("OLD").await;
        let disks = lettered_disks(&sim);
        let (letter, disk) = disks[0].clone();
        let drive = letter.trim_end_matches(':');
        let outside = s.path("outside");
        std::fs::create_dir_all(outside.join("secret")).unwrap();
        let precious = s.path("precious.db");
        std::fs::write(&precious, b"keep").unwrap();
        // A folder of the cluster disk that is a link out of it.
        std::os::unix::fs::symlink(&outside, disk.join("escape")).unwrap();
        let special = special_file(&disk.join("special"));

        let mut refused = Vec::new();
        // An absolute path outside the cluster disks, as source and as destination.
        refused.push(
            s.refused(
                &agent,
                copy("/etc", disk.join("etc").display().to_string(), ""),
                "source",
                "/etc",
            )
            .await,
        );
        let out = text(&outside.join("copy"));
        refused.push(
            s.refused(&agent, copy(text(&disk), &out, ""), "destination", &out)
                .await,
        );
        // A link inside the disk that leads out, by local path, by drive and by admin share.
        let link = text(&disk.join("escape"));
        refused.push(
            s.refused(
                &agent,
                copy(&link, text(&disk.join("x")), ""),
                "source",
                &link,
            )
            .await,
        );
        let by_drive = format!("{letter}\\escape\\new");
        refused.push(
            s.refused(
                &agent,
                copy(text(&disk), &by_drive, ""),
                "destination",
                &by_drive,
            )
            .await,
        );
        let by_share = format!("\\\\OLD\\{drive}$\\escape");
        let task = s
            .run(&agent, copy(&by_share, format!("{letter}\\x"), ""))
            .await;
        refused.push(s.check_refused(&task, "source", &by_share));
        assert!(
            task["error"]["message"]
                .as_str()
                .unwrap()
                .contains("resolves to"),
            "{task:#}"
        );
        // A device (or fifo) where a folder is expected.
        let device = text(&disk.join("special"));
        let task = s
            .run(&agent, copy(&device, text(&disk.join("x")), ""))
            .await;
        refused.push(s.check_refused(&task, "source", &device));
        assert!(
            task["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("{special}, not a directory")),
            "{task:#}"
        );

        // What the server would refuse, sent anyway: the agent refuses it as well.
        let bad_log = Action::SkeletonCopy {
            source: text(&disk),
            destination: text(&disk.join("x")),
            depth: 2,
            log_path: text(&precious),
        };
        let task = s.behind_the_servers_back(&agent, &bad_log).await;
        refused.push(s.check_refused(&task, "log_path", &text(&precious)));
        let climbing = format!("{}/../../../../outside", text(&disk));
        let bad_source = Action::SkeletonCopy {
            source: climbing.clone(),
            destination: text(&disk.join("x")),
            depth: 2,
            log_path: String::new(),
        };
        let task = s.behind_the_servers_back(&agent, &bad_source).await;
        refused.push(s.check_refused(&task, "source", &climbing));

        // Nothing was written where it was not allowed.
        assert_eq!(std::fs::read(&precious).unwrap(), b"keep");
        assert!(!outside.join("copy").exists());
        assert!(!outside.join("new").exists());
        assert!(!disk.join("x").exists());

        // Each refusal is one `task.forbidden` record: the agent its actor, the task its
        // target, denied, the rule in the detail.
        let this = &s;
        let count = refused.len();
        let audit = eventually("every refusal audited", move || async move {
            let audit = this.forbidden_audit().await;
            (audit.len() == count).then_some(audit)
        })
        .await;
        for (record, task) in audit.iter().zip(&refused) {
            assert_eq!(record["actor"], format!("agent:{agent}"), "{record:#}");
            assert_eq!(record["target"], format!("task:{task}"), "{record:#}");
            assert_eq!(record["outcome"], "denied", "{record:#}");
            assert!(
                record["detail"].as_str().unwrap().contains("refused: "),
                "{record:#}"
            );
        }
        s.stop().await;
    })
    .await;
}

#[tokio::test]
async fn allowed_copies_still_work_and_log_in_the_agents_directory() {
    on_each_backend(|_, store| async move {
        let mut s = Setup::start(store).await;
        // By default: the cluster's own disks, by drive letter and by administrative share, as
        // the runbook names them.
        let (agent, sim) = s.sim_cluster("OLD").await;
        let disks = lettered_disks(&sim);
        let (from, _) = &disks[0];
        let (to, to_disk) = &disks[1];
        let source = format!("\\\\OLD-n1\\{}$\\", from.trim_end_matches(':'));
        let task = s
            .run(
                &agent,
                copy(&source, format!("{to}\\copy"), "skeleton-FS01.log"),
            )
            .await;
        assert_eq!(task["state"], "succeeded", "{task:#}");
        assert_eq!(task["result"]["verification"]["passed"], true, "{task:#}");
        assert!(to_disk.join("copy").is_dir());
        assert!(s.state_dir("OLD").join("logs/skeleton-FS01.log").is_file());

        // An agent without a cluster, told where it may go: local folders, the log named by
        // the task when the task names none.
        let allowed = s.path("allowed");
        std::fs::create_dir_all(allowed.join("in/a/b")).unwrap();
        let builtin = Builtin::new(DriverKind::Sim, None).with_allow_paths([allowed.clone()]);
        let local = s.agent("LOCAL", OsGeneration::Ws2012r2, builtin).await;
        let task = s
            .run(
                &local,
                copy(text(&allowed.join("in")), text(&allowed.join("out")), ""),
            )
            .await;
        assert_eq!(task["state"], "succeeded", "{task:#}");
        assert!(allowed.join("out/a").is_dir());
        let id = task["id"].as_str().unwrap();
        assert!(
            s.state_dir("LOCAL")
                .join(format!("logs/{id}.log"))
                .is_file()
        );
        // ... and nowhere else: not the simulated disks the other agent may touch.
        let elsewhere = text(&disks[0].1);
        s.refused(
            &local,
            copy(&elsewhere, text(&allowed.join("o")), ""),
            "source",
            &elsewhere,
        )
        .await;
        // Nor its own state directory, although it lies next to what it may touch.
        let own = text(&s.state_dir("LOCAL").join("logs"));
        s.refused(
            &local,
            copy(text(&allowed.join("in")), &own, ""),
            "destination",
            &own,
        )
        .await;

        let this = &s;
        eventually("two refusals audited", move || async move {
            (this.forbidden_audit().await.len() == 2).then_some(())
        })
        .await;
        s.stop().await;
    })
    .await;
}
