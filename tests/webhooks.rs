//! Webhooks end to end: a real server on loopback, a receiver (a small axum app, plain or behind
//! TLS with a CA made at test time) that records every request, fails or redirects on demand,
//! and jobs whose state changes produce the events. Jobs run without agents: creating, pausing,
//! resuming and cancelling one emits events all the same.

mod common;

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use ferry::config::Config;
use ferry::server::{RunningServer, start_with_store};
use ferry::store::{EventFilter, Store};

use common::{BOOTSTRAP, PATIENCE, Received, Receiver, TestPki, eventually};

struct Harness {
    server: RunningServer,
    store: Arc<dyn Store>,
}

impl Harness {
    async fn start(store: Arc<dyn Store>) -> Self {
        Self::start_with(store, Config::default()).await
    }

    /// A server with `config`'s settings but its own loopback addresses and bootstrap token.
    async fn start_with(store: Arc<dyn Store>, config: Config) -> Self {
        let config = Config {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            bootstrap_token: Some(BOOTSTRAP.into()),
            ..config
        };
        config
            .validate()
            .expect("the test's configuration is valid");
        let server = start_with_store(&config, store.clone())
            .await
            .expect("server starts");
        Harness { server, store }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(BOOTSTRAP, method, path, body).await
    }

    async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        common::http_json(self.server.http_addr, method, path, Some(token), body).await
    }

    /// Two clusters with a direct, lossless hop, the source holding two groups.
    async fn clusters(&self) {
        for (name, os) in [("OLD", "ws2012"), ("NEW", "ws2012r2")] {
            let (status, body) = self
                .call(
                    "POST",
                    "/v1/clusters",
                    Some(json!({"name": name, "os": os})),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
        let document = serde_json::to_value(common::sample_inventory(2, 1, 1)).unwrap();
        let (status, body) = self
            .call("PUT", "/v1/clusters/OLD/inventory", Some(document))
            .await;
        assert_eq!(status, 201, "{body}");
    }

    /// Starts a job moving one group; returns its id.
    async fn job(&self, group: &str) -> String {
        let request = json!({"source": "OLD", "target": "NEW", "groups": [group]});
        let (status, job) = self.call("POST", "/v1/jobs", Some(request)).await;
        assert_eq!(status, 201, "{job:#}");
        job["id"].as_str().unwrap().to_owned()
    }

    async fn verb(&self, job: &str, verb: &str) {
        let (status, body) = self
            .call("POST", &format!("/v1/jobs/{job}/{verb}"), None)
            .await;
        assert_eq!(status, 200, "{verb}: {body:#}");
    }

    /// Sequence numbers of every stored event after `after` (of one job, when given).
    async fn stored_seqs(&self, job: Option<&str>, after: i64) -> Vec<i64> {
        let filter = EventFilter {
            job_id: job.map(|j| j.parse().unwrap()),
            ..EventFilter::default()
        };
        self.store
            .job_events(&filter, after, 10_000)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect()
    }

    async fn webhook(&self, url: String, job: Option<&str>) -> Value {
        let (status, hook) = self
            .call(
                "POST",
                "/v1/webhooks",
                Some(json!({"url": url, "job_id": job})),
            )
            .await;
        assert_eq!(status, 201, "{hook:#}");
        hook
    }

    /// The webhook as listed once its delivery has failed at least once.
    async fn failed_delivery(&self, id: &str) -> Value {
        eventually("a failed delivery recorded", || async {
            let (_, listed) = self.call("GET", "/v1/webhooks", None).await;
            listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| h["id"] == id && h["failures"].as_u64() >= Some(1))
                .cloned()
        })
        .await
    }
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Waits until the receiver has acknowledged every stored event after the webhook's mark (of
/// one job, when given), and nothing else, checking every delivery on the way; returns them.
async fn caught_up(
    h: &Harness,
    receiver: &Receiver,
    path: &str,
    hook: &Value,
    job: Option<&str>,
) -> Vec<i64> {
    let mark = hook["delivered"].as_i64().unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let expected = h.stored_seqs(job, mark).await;
        let acknowledged = check_deliveries(&receiver.received(path), hook);
        if !expected.is_empty() && acknowledged == expected {
            return expected;
        }
        if tokio::time::Instant::now() >= deadline {
            assert_eq!(acknowledged, expected, "{path}: acknowledged vs stored");
            panic!("{path}: no events");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks what every delivery must carry, and returns the acknowledged ones' sequence numbers
/// in the order they arrived.
fn check_deliveries(received: &[Received], hook: &Value) -> Vec<i64> {
    let secret = hook["secret"].as_str().unwrap();
    let mut acknowledged = Vec::new();
    for r in received {
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.header("x-ferry-webhook-id"), hook["id"].as_str().unwrap());
        let seqs = r.seqs();
        assert!(!seqs.is_empty() && seqs.len() <= 100, "{seqs:?}");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
        assert_eq!(
            r.header("x-ferry-delivery"),
            seqs.last().unwrap().to_string(),
            "X-Ferry-Delivery names the last seq"
        );
        assert_eq!(
            r.header("x-ferry-signature"),
            format!("sha256={}", hmac_hex(secret, &r.body)),
            "signature over the exact body"
        );
        assert_ne!(
            r.header("x-ferry-signature"),
            format!("sha256={}", hmac_hex("another secret", &r.body))
        );
        if r.answered.is_success() {
            acknowledged.extend(seqs);
        }
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_posted_signed_in_order_and_retried_without_skipping() {
    common::on_each_backend(|backend, store| async move {
        let h = Harness::start(store).await;
        let (receiver, addr) = Receiver::start(2).await;
        h.clusters().await;
        let groups = common::sample_inventory(2, 1, 1).groups;
        // History: a webhook does not replay what happened before it was created.
        let before = h.job(&groups[0].name).await;
        h.verb(&before, "pause").await;
        let history = h.stored_seqs(None, 0).await;
        assert!(history.len() >= 2, "[{backend}] {history:?}");

        let hook = h.webhook(format!("http://{addr}/flaky"), None).await;
        assert!(hook["secret"].as_str().unwrap().starts_with("fyw_"));
        let start = hook["delivered"].as_i64().unwrap();
        assert!(start >= *history.last().unwrap(), "[{backend}] {hook:#}");
        let (status, listed) = h.call("GET", "/v1/webhooks", None).await;
        assert_eq!(status, 200);
        assert_eq!(listed["items"][0]["id"], hook["id"]);
        assert!(listed["items"][0].get("secret").is_none(), "{listed:#}");

        let job = h.job(&groups[1].name).await;
        let scoped = h.webhook(format!("http://{addr}/scoped"), Some(&job)).await;
        h.verb(&job, "pause").await;
        h.verb(&job, "resume").await;
        h.verb(&job, "cancel").await;

        // Everything after the mark arrives, acknowledged once, in order, nothing skipped.
        let expected = caught_up(&h, &receiver, "/flaky", &hook, None).await;

        // The first two posts were refused; the first acknowledged one carries their events.
        let flaky = receiver.received("/flaky");
        assert_eq!(flaky[0].answered, 500);
        assert_eq!(flaky[1].answered, 500);
        assert!(flaky[2].answered.is_success());
        let refused = flaky[0].seqs();
        assert_eq!(refused[0], expected[0], "the first event after the mark");
        assert!(
            flaky[1].seqs().starts_with(&refused),
            "retried, not skipped"
        );
        assert!(
            flaky[2].seqs().starts_with(&refused),
            "retried, not skipped"
        );

        // The scoped webhook saw its job's events only, from its creation on.
        let job_events = caught_up(&h, &receiver, "/scoped", &scoped, Some(&job)).await;
        assert!(
            job_events.len() >= 3,
            "pause, resume, cancel: {job_events:?}"
        );
        for r in receiver.received("/scoped") {
            for event in r.json()["events"].as_array().unwrap() {
                assert_eq!(event["job_id"], job.as_str());
            }
        }

        // The stored state shows the catch-up: mark at the newest event, failures cleared.
        let newest = *expected.last().unwrap();
        let listed = eventually("the mark recorded", || async {
            let (_, listed) = h.call("GET", "/v1/webhooks", None).await;
            (listed["items"][0]["delivered"].as_i64() >= Some(newest)).then_some(listed)
        })
        .await;
        let first = &listed["items"][0];
        assert_eq!(first["failures"], 0, "{listed:#}");
        assert!(first["last_error"].is_null(), "{listed:#}");

        // Deleted: nothing more is posted.
        let (status, deleted) = h
            .call(
                "DELETE",
                &format!("/v1/webhooks/{}", hook["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(status, 200, "{deleted:#}");
        assert_eq!(deleted["id"], hook["id"]);
        assert!(deleted.get("secret").is_none());
        let posts = receiver.received("/flaky").len();
        let before_resume = h.stored_seqs(None, 0).await.len();
        h.verb(&before, "resume").await;
        assert!(h.stored_seqs(None, 0).await.len() > before_resume);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(receiver.received("/flaky").len(), posts, "[{backend}]");

        h.server.stop().await.expect("server stops cleanly");
    })
    .await;
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_the_events_once_it_is_up() {
    let (store, _db) = common::sqlite_store().await;
    let h = Harness::start(store).await;
    h.clusters().await;
    // A port nobody listens on yet: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hook = h
        .webhook(format!("http://127.0.0.1:{port}/hook"), None)
        .await;
    let id = hook["id"].as_str().unwrap().to_owned();
    let groups = common::sample_inventory(2, 1, 1).groups;
    let job = h.job(&groups[0].name).await;

    let failing = eventually("a failure recorded", || async {
        let (_, listed) = h.call("GET", "/v1/webhooks", None).await;
        let hook = listed["items"][0].clone();
        (hook["failures"].as_u64() >= Some(1)).then_some(hook)
    })
    .await;
    assert_eq!(failing["delivered"], hook["delivered"], "no event skipped");
    assert!(failing["next_attempt"].is_string(), "{failing:#}");
    let error = failing["last_error"].as_str().unwrap();
    assert!(
        error.contains("onnect"),
        "names the connection failure: {error}"
    );

    // The receiver comes up on that port.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let receiver = Receiver::serve(listener);
    h.verb(&job, "cancel").await;

    let start = hook["delivered"].as_i64().unwrap();
    let acknowledged = eventually("events delivered after the outage", || async {
        let expected = h.stored_seqs(None, start).await;
        let acknowledged = check_deliveries(&receiver.received("/hook"), &hook);
        (!expected.is_empty() && acknowledged == expected).then_some(acknowledged)
    })
    .await;
    assert_eq!(acknowledged[0], h.stored_seqs(None, start).await[0]);
    let (_, listed) = h.call("GET", "/v1/webhooks", None).await;
    assert_eq!(listed["items"][0]["id"], id.as_str());
    h.server.stop().await.expect("server stops cleanly");
}

#[tokio::test]
async fn webhooks_are_for_admins_and_their_urls_are_checked() {
    let (store, _db) = common::sqlite_store().await;
    let h = Harness::start(store).await;

    let (status, operator) = h
        .call(
            "POST",
            "/v1/tokens",
            Some(json!({"name": "ops", "role": "operator"})),
        )
        .await;
    assert_eq!(status, 201, "{operator}");
    let operator = operator["token"].as_str().unwrap();
    let body = json!({"url": "http://127.0.0.1:9/hook"});
    let (status, problem) = h
        .call_as(operator, "POST", "/v1/webhooks", Some(body.clone()))
        .await;
    assert_eq!(status, 403, "{problem:#}");
    let (status, _) = h.call_as(operator, "GET", "/v1/webhooks", None).await;
    assert_eq!(status, 403);

    for (bad, field) in [
        (json!({"url": "ftp://hooks.example/"}), "url"),
        (json!({"url": "hooks.example/ferry"}), "url"),
        (json!({"url": "http://"}), "url"),
        (json!({"url": "https://"}), "url"),
        (
            json!({"url": format!("http://h/{}", "a".repeat(3000))}),
            "url",
        ),
        (json!({"url": "http://h/", "secret": "short"}), "secret"),
        (
            json!({"url": "http://h/", "job_id": "0190c3a4-0000-7000-8000-000000000000"}),
            "job_id",
        ),
    ] {
        let (status, problem) = h.call("POST", "/v1/webhooks", Some(bad.clone())).await;
        assert_eq!(status, 422, "{bad} -> {problem:#}");
        assert!(problem.to_string().contains(field), "{bad} -> {problem:#}");
    }
    let (_, problem) = h
        .call(
            "POST",
            "/v1/webhooks",
            Some(json!({"url": "ftp://hooks.example/"})),
        )
        .await;
    assert!(
        problem
            .to_string()
            .contains("must start with http:// or https://"),
        "{problem:#}"
    );
    // HTTPS receivers are accepted; their certificates are checked when delivering.
    let (status, hook) = h
        .call(
            "POST",
            "/v1/webhooks",
            Some(json!({"url": "https://hooks.example:8443/ferry"})),
        )
        .await;
    assert_eq!(status, 201, "{hook:#}");
    let https = hook["id"].as_str().unwrap();
    let (status, _) = h
        .call("DELETE", &format!("/v1/webhooks/{https}"), None)
        .await;
    assert_eq!(status, 200);

    // A chosen secret is kept; the answer names the new webhook.
    let (status, hook) = h
        .call(
            "POST",
            "/v1/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/hook", "secret": "0123456789abcdef-mine"})),
        )
        .await;
    assert_eq!(status, 201, "{hook:#}");
    assert_eq!(hook["secret"], "0123456789abcdef-mine");
    assert_eq!(hook["delivered"], 0, "no events yet");
    let id = hook["id"].as_str().unwrap();
    let (status, _) = h
        .call_as(operator, "DELETE", &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = h.call("DELETE", &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(status, 200);
    let (status, _) = h.call("DELETE", &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(status, 404);
    let (status, _) = h.call("DELETE", "/v1/webhooks/not-a-uuid", None).await;
    assert_eq!(status, 404);
    let (_, listed) = h.call("GET", "/v1/webhooks", None).await;
    assert_eq!(listed["items"], json!([]));

    // Audited: the refusal, the creation and the deletion.
    let (_, audit) = h.call("GET", "/v1/audit?limit=1000", None).await;
    let records: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"].as_str().unwrap().starts_with("webhook."))
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("webhook.create", "denied"),
        ("webhook.create", "success"),
        ("webhook.create", "failure"),
        ("webhook.delete", "denied"),
        ("webhook.delete", "success"),
    ] {
        assert!(
            records.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} in {records:?}"
        );
    }
    h.server.stop().await.expect("server stops cleanly");
}

/// An HTTPS receiver whose certificate a CA made here signed: delivered to when the server pins
/// that CA (`webhook_ca`), signed and in order as over plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_receiver_is_delivered_to_when_its_ca_is_pinned() {
    common::on_each_backend(|backend, store| async move {
        let pki = TestPki::new("webhooks");
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            webhook_ca: Some(pki.write_ca(dir.path(), "ca.pem")),
            ..Config::default()
        };
        let h = Harness::start_with(store, config).await;
        let (receiver, addr) = Receiver::start_tls(&pki).await;
        h.clusters().await;
        let hook = h
            .webhook(format!("https://localhost:{}/hook", addr.port()), None)
            .await;
        let groups = common::sample_inventory(2, 1, 1).groups;
        let job = h.job(&groups[0].name).await;
        h.verb(&job, "pause").await;

        let delivered = caught_up(&h, &receiver, "/hook", &hook, None).await;
        assert!(delivered.len() >= 2, "[{backend}] {delivered:?}");
        let (_, listed) = h.call("GET", "/v1/webhooks", None).await;
        let listed = &listed["items"][0];
        assert_eq!(listed["failures"], 0, "[{backend}] {listed:#}");
        assert!(listed["last_error"].is_null(), "[{backend}] {listed:#}");
        h.server.stop().await.expect("server stops cleanly");
    })
    .await;
}

/// Without the pin, the same receiver's certificate does not verify against the public roots:
/// nothing reaches it, and the webhook shows a failed delivery saying why.
#[tokio::test]
async fn an_https_receiver_of_an_unknown_ca_is_refused() {
    let (store, _db) = common::sqlite_store().await;
    let h = Harness::start(store).await;
    let pki = TestPki::new("unknown");
    let (receiver, addr) = Receiver::start_tls(&pki).await;
    h.clusters().await;
    let hook = h
        .webhook(format!("https://localhost:{}/hook", addr.port()), None)
        .await;
    let groups = common::sample_inventory(2, 1, 1).groups;
    h.job(&groups[0].name).await;

    let failing = h.failed_delivery(hook["id"].as_str().unwrap()).await;
    assert_eq!(failing["delivered"], hook["delivered"], "no event skipped");
    assert!(failing["next_attempt"].is_string(), "{failing:#}");
    let error = failing["last_error"].as_str().unwrap();
    assert!(
        error.contains("certificate") && error.contains("UnknownIssuer"),
        "says the certificate is not trusted: {error}"
    );
    assert!(receiver.received("/hook").is_empty());
    h.server.stop().await.expect("server stops cleanly");
}

/// A receiver answering with a redirect has not acknowledged anything, and the redirect is not
/// followed: the signed events go to the registered URL only.
#[tokio::test]
async fn a_redirect_is_a_failed_delivery_and_is_not_followed() {
    let (store, _db) = common::sqlite_store().await;
    let h = Harness::start(store).await;
    let (receiver, addr) = Receiver::start(0).await;
    h.clusters().await;
    let hook = h.webhook(format!("http://{addr}/moved"), None).await;
    let groups = common::sample_inventory(2, 1, 1).groups;
    h.job(&groups[0].name).await;

    let failing = h.failed_delivery(hook["id"].as_str().unwrap()).await;
    assert_eq!(
        failing["delivered"], hook["delivered"],
        "nothing acknowledged"
    );
    let error = failing["last_error"].as_str().unwrap();
    assert!(
        error.contains("307") && error.contains("/hook") && error.contains("not followed"),
        "{error}"
    );
    assert!(!receiver.received("/moved").is_empty());
    // Let a retry or two pass: still nothing at the redirect's target.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(receiver.received("/hook").is_empty(), "redirect followed");
    h.server.stop().await.expect("server stops cleanly");
}
