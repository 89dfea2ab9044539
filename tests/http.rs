//! The REST API through the real router: every route, every role, every kind of bad input, on
//! SQLite and (when configured) Postgres.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use ferry::http::{AppState, HttpOptions, Timeouts};
use ferry::metrics::Metrics;
use ferry::model::{InventoryDocument, NewToken, Role};
use ferry::service::{Service, issue_token};
use ferry::store::Store;

/// A router over a fresh store, with one token per role plus a revoked and an expired one.
struct Api {
    router: Router,
    store: Arc<dyn Store>,
    viewer: String,
    operator: String,
    admin: String,
    revoked: String,
    expired: String,
    _dir: Option<tempfile::TempDir>,
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Value,
}

impl Reply {
    fn problem_type(&self) -> &str {
        self.body["type"].as_str().unwrap_or_default()
    }
}

async fn token(store: &dyn Store, name: &str, role: Role, ttl: Option<i64>) -> String {
    issue_token(
        store,
        &NewToken {
            name: name.into(),
            role,
            ttl_seconds: ttl,
        },
    )
    .await
    .unwrap()
    .token
    .unwrap()
}

impl Api {
    async fn new(store: Arc<dyn Store>, dir: Option<tempfile::TempDir>) -> Self {
        Self::with_options(store, dir, HttpOptions::default()).await
    }

    async fn with_options(
        store: Arc<dyn Store>,
        dir: Option<tempfile::TempDir>,
        options: HttpOptions,
    ) -> Self {
        Self::with_timeouts(store, dir, options, Timeouts::default()).await
    }

    async fn with_timeouts(
        store: Arc<dyn Store>,
        dir: Option<tempfile::TempDir>,
        options: HttpOptions,
        timeouts: Timeouts,
    ) -> Self {
        let viewer = token(store.as_ref(), "viewer", Role::Viewer, None).await;
        let operator = token(store.as_ref(), "operator", Role::Operator, None).await;
        let admin = token(store.as_ref(), "admin", Role::Admin, None).await;
        let revoked = token(store.as_ref(), "revoked", Role::Admin, None).await;
        let revoked_id = store
            .token_by_hash(&ferry::auth::hash_secret(&revoked))
            .await
            .unwrap()
            .unwrap()
            .id;
        store
            .revoke_token(revoked_id, chrono::Utc::now())
            .await
            .unwrap();
        let expired = token(store.as_ref(), "expired", Role::Admin, Some(1)).await;
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let state = AppState::new(Service::new(store.clone()), Arc::new(Metrics::new()));
        Self {
            router: ferry::http::router_with_timeouts(state, &options, timeouts),
            store,
            viewer,
            operator,
            admin,
            revoked,
            expired,
            _dir: dir,
        }
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            panic!("500 from the API: {body}");
        }
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(
                headers[header::CONTENT_TYPE],
                "application/problem+json",
                "errors are problem+json: {body}"
            );
        }
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.request(method, path, token, body, &[]).await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
            None => builder.body(Body::empty()).unwrap(),
        };
        self.send(request).await
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.admin))
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap();
        self.send(request).await
    }

    async fn create_cluster(&self, name: &str, os: &str) -> Value {
        let r = self
            .call(
                Method::POST,
                "/v1/clusters",
                Some(&self.operator),
                Some(json!({"name": name, "os": os})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }

    async fn import(&self, cluster: &str, doc: &InventoryDocument) -> Reply {
        self.call(
            Method::PUT,
            &format!("/v1/clusters/{cluster}/inventory"),
            Some(&self.operator),
            Some(serde_json::to_value(doc).unwrap()),
        )
        .await
    }

    /// Everything a rejected request must leave as it was.
    async fn state(&self) -> Value {
        let clusters = self
            .call(
                Method::GET,
                "/v1/clusters?limit=1000",
                Some(&self.admin),
                None,
            )
            .await
            .body;
        let mut snapshots = Vec::new();
        let mut groups = Vec::new();
        for c in clusters["items"].as_array().unwrap() {
            let name = c["name"].as_str().unwrap();
            snapshots.push(
                self.call(
                    Method::GET,
                    &format!("/v1/clusters/{name}/snapshots"),
                    Some(&self.admin),
                    None,
                )
                .await
                .body,
            );
            groups.push(
                self.call(
                    Method::GET,
                    &format!("/v1/clusters/{name}/groups"),
                    Some(&self.admin),
                    None,
                )
                .await
                .body,
            );
        }
        let tokens = self
            .call(Method::GET, "/v1/tokens", Some(&self.admin), None)
            .await
            .body;
        json!({"clusters": clusters, "snapshots": snapshots, "groups": groups, "tokens": tokens})
    }
}

/// A `#[tokio::test]` that runs its body once per configured backend, each with a fresh store
/// behind the router (`common::on_each_backend`).
macro_rules! on_every_store {
    ($name:ident, |$api:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            common::on_each_backend(|_, store| async move {
                let $api = Api::new(store, None).await;
                $body
            })
            .await;
        }
    };
}

fn small_inventory() -> InventoryDocument {
    common::sample_inventory(3, 5, 3)
}

on_every_store!(cluster_lifecycle_with_etags, |api| {
    let created = api.create_cluster("FS-OLD", "ws2003").await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["os"], "ws2003");

    for key in [id.as_str(), "FS-OLD"] {
        let r = api
            .call(
                Method::GET,
                &format!("/v1/clusters/{key}"),
                Some(&api.viewer),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["id"], id.as_str());
    }
    let r = api
        .call(Method::GET, "/v1/clusters/FS-OLD", Some(&api.viewer), None)
        .await;
    let etag = r.headers[header::ETAG].to_str().unwrap().to_string();

    let r = api
        .request(
            Method::PATCH,
            "/v1/clusters/FS-OLD",
            Some(&api.operator),
            Some(json!({"description": "old file servers"})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["description"], "old file servers");
    let new_etag = r.headers[header::ETAG].to_str().unwrap().to_string();
    assert_ne!(etag, new_etag);

    // The old ETag is stale now: refused, and nothing changes.
    let before = api.state().await;
    let r = api
        .request(
            Method::PATCH,
            "/v1/clusters/FS-OLD",
            Some(&api.operator),
            Some(json!({"description": "lost update"})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(r.problem_type(), "urn:ferry:problem:precondition-failed");
    assert_eq!(api.state().await, before);

    let r = api
        .request(
            Method::DELETE,
            "/v1/clusters/FS-OLD",
            Some(&api.operator),
            None,
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = api
        .request(
            Method::DELETE,
            "/v1/clusters/FS-OLD",
            Some(&api.operator),
            None,
            &[("if-match", &new_etag)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api
        .call(Method::GET, "/v1/clusters/FS-OLD", Some(&api.viewer), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.problem_type(), "urn:ferry:problem:not-found");
});

on_every_store!(cluster_list_paginates_with_cursor, |api| {
    let mut names: Vec<String> = (0..25).map(|i| format!("c{i:02}")).collect();
    names.extend(["Zeta".to_string(), "alpha".to_string(), "Ärger".to_string()]);
    for name in &names {
        api.create_cluster(name, "ws2019").await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/clusters?limit=7&cursor={c}"),
            None => "/v1/clusters?limit=7".to_string(),
        };
        let r = api.call(Method::GET, &path, Some(&api.viewer), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let items = r.body["items"].as_array().unwrap();
        assert!(items.len() <= 7);
        seen.extend(
            items
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_string()),
        );
        match r.body["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    names.sort();
    assert_eq!(seen, names, "every cluster once, in byte order");
});

on_every_store!(inventory_import_snapshots_groups_and_shares, |api| {
    api.create_cluster("FS-OLD", "ws2003").await;
    let doc = small_inventory();
    let r = api.import("FS-OLD", &doc).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["number"], 1);
    assert_eq!(r.body["counts"]["shares"], 15);
    let hash = r.body["content_hash"].as_str().unwrap().to_string();
    assert_eq!(
        r.headers[header::ETAG].to_str().unwrap(),
        format!("\"{hash}\"")
    );

    // Same content in another order: no new snapshot.
    let mut shuffled = doc.clone();
    shuffled.groups.reverse();
    for g in &mut shuffled.groups {
        g.shares.reverse();
    }
    let r = api.import("FS-OLD", &shuffled).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["number"], 1);
    assert_eq!(r.body["content_hash"], hash.as_str());

    let r = api
        .call(
            Method::GET,
            "/v1/clusters/FS-OLD/snapshots",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = api
        .call(
            Method::GET,
            "/v1/clusters/FS-OLD/snapshots/1",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let mut canonical = doc.clone();
    canonical.canonicalize();
    assert_eq!(
        r.body["inventory"],
        serde_json::to_value(&canonical).unwrap()
    );

    let r = api
        .call(
            Method::GET,
            "/v1/clusters/FS-OLD/groups",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let groups = r.body["items"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    let group = &canonical.groups[0];
    let group_id = groups[0]["id"].as_str().unwrap().to_string();
    assert_eq!(groups[0]["name"], group.name.as_str());
    assert_eq!(groups[0]["share_count"], 5);

    for key in [
        group_id.clone(),
        format!("FS-OLD%2F{}", urlencode(&group.name)),
    ] {
        let r = api
            .call(
                Method::GET,
                &format!("/v1/groups/{key}"),
                Some(&api.viewer),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{key}: {}", r.body);
        assert_eq!(r.body["id"], group_id.as_str());
        assert_eq!(
            r.body["resources"],
            serde_json::to_value(&group.resources).unwrap(),
            "resources with their dependencies"
        );
    }

    let r = api
        .call(
            Method::GET,
            &format!("/v1/groups/{group_id}/shares?limit=2"),
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        r.body["items"][0],
        serde_json::to_value(&group.shares[0]).unwrap()
    );
    assert!(r.body["next"].is_string());

    // Filters: by name prefix and by principal.
    let first = &group.shares[0];
    let prefix: String = first.name.chars().take(2).collect();
    let r = api
        .call(
            Method::GET,
            &format!(
                "/v1/groups/{group_id}/shares?name_prefix={}",
                urlencode(&prefix.to_lowercase())
            ),
            Some(&api.viewer),
            None,
        )
        .await;
    let expected: Vec<&str> = group
        .shares
        .iter()
        .filter(|s| s.name.to_lowercase().starts_with(&prefix.to_lowercase()))
        .map(|s| s.name.as_str())
        .collect();
    let got: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(got, expected);
    let principal = &first.permissions[0].principal;
    let r = api
        .call(
            Method::GET,
            &format!(
                "/v1/groups/{group_id}/shares?principal={}",
                urlencode(principal)
            ),
            Some(&api.viewer),
            None,
        )
        .await;
    let expected: Vec<&str> = group
        .shares
        .iter()
        .filter(|s| {
            s.permissions
                .iter()
                .any(|p| p.principal.eq_ignore_ascii_case(principal))
        })
        .map(|s| s.name.as_str())
        .collect();
    let got: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
});

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

on_every_store!(import_honours_if_match, |api| {
    api.create_cluster("FS-OLD", "ws2003").await;
    let doc = small_inventory();
    let r = api
        .request(
            Method::PUT,
            "/v1/clusters/FS-OLD/inventory",
            Some(&api.operator),
            Some(serde_json::to_value(&doc).unwrap()),
            &[("if-match", "*")],
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "no snapshot yet");
    let first = api.import("FS-OLD", &doc).await;
    let etag = first.headers[header::ETAG].to_str().unwrap().to_string();
    let mut changed = doc.clone();
    changed.groups[0].shares[0].description = "changed".into();
    let r = api
        .request(
            Method::PUT,
            "/v1/clusters/FS-OLD/inventory",
            Some(&api.operator),
            Some(serde_json::to_value(&changed).unwrap()),
            &[("if-match", "\"sha256:0000\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = api
        .request(
            Method::PUT,
            "/v1/clusters/FS-OLD/inventory",
            Some(&api.operator),
            Some(serde_json::to_value(&changed).unwrap()),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["number"], 2);
});

on_every_store!(snapshot_diffs_through_the_api, |api| {
    use ferry::model::{Access, AceType, Permission, Share};
    api.create_cluster("FS-OLD", "ws2003").await;
    let base = small_inventory();
    api.import("FS-OLD", &base).await;
    let mut next = base.clone();
    let group = next.groups[0].name.clone();
    // Permission added, changed and removed on three shares; one share renamed; a nested share
    // added under an existing one.
    next.groups[0].shares[0].permissions.push(Permission {
        principal: "CORP\\Auditors".into(),
        ace_type: AceType::Allow,
        access: Access::Read,
    });
    next.groups[0].shares[1].permissions[0].access = Access::Full;
    let removed = next.groups[0].shares[2].permissions.remove(0);
    let old_name = next.groups[0].shares[3].name.clone();
    next.groups[0].shares[3].name = "Renamed$".into();
    let parent = next.groups[0].shares[4].clone();
    next.groups[0].shares.push(Share {
        name: "Nested".into(),
        path: format!("{}\\Nested", parent.path),
        ..parent.clone()
    });
    let r = api.import("FS-OLD", &next).await;
    assert_eq!(r.status, StatusCode::CREATED);

    let r = api
        .call(
            Method::GET,
            "/v1/clusters/FS-OLD/snapshots/1/diff/2",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let changes = r.body["changes"].as_array().unwrap();
    let find = |kind: &str, op: &str| -> Vec<&Value> {
        changes
            .iter()
            .filter(|c| c["kind"] == kind && c["op"] == op)
            .collect()
    };
    assert_eq!(find("permission", "added").len(), 1, "{changes:#?}");
    assert_eq!(find("permission", "changed").len(), 1);
    assert_eq!(find("permission", "removed").len(), 1);
    assert!(
        find("permission", "removed")[0]["path"]
            .as_str()
            .unwrap()
            .contains(&removed.principal)
    );
    let renamed = find("share", "renamed");
    assert_eq!(renamed.len(), 1);
    assert_eq!(renamed[0]["renamed_from"], old_name.as_str());
    let added = find("share", "added");
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["share"], "Nested");
    assert_eq!(added[0]["group"], group.as_str());
    assert!(
        find("share", "changed").is_empty(),
        "the parent of the nested share is unchanged"
    );
    assert_eq!(changes.len(), 5);

    let r = api
        .call(
            Method::GET,
            "/v1/clusters/FS-OLD/snapshots/2/diff/2",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(r.body["changes"], json!([]));
    let r = api
        .call(
            Method::GET,
            "/v1/clusters/FS-OLD/snapshots/1/diff/9",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
});

on_every_store!(bad_input_is_refused_and_changes_nothing, |api| {
    api.create_cluster("FS-OLD", "ws2003").await;
    api.import("FS-OLD", &small_inventory()).await;
    let before = api.state().await;
    let op = Some(api.operator.as_str());

    // (request, expected status, expected problem type, expected field)
    let cases: Vec<(Reply, StatusCode, &str, Option<&str>)> = vec![
        (api.raw(Method::POST, "/v1/clusters", "application/json", "{\"name\": \"x\",").await,
            StatusCode::BAD_REQUEST, "bad-request", None),
        (api.raw(Method::POST, "/v1/clusters", "application/json", "{\"name\": \"x\", \"os\": \"ws2003\"} trailing").await,
            StatusCode::BAD_REQUEST, "bad-request", None),
        (api.call(Method::POST, "/v1/clusters", op, Some(json!({"name": 5, "os": "ws2003"}))).await,
            StatusCode::UNPROCESSABLE_ENTITY, "validation", Some("name")),
        (api.call(Method::POST, "/v1/clusters", op, Some(json!({"name": "x", "os": "ws2003", "colour": "red"}))).await,
            StatusCode::UNPROCESSABLE_ENTITY, "validation", Some("colour")),
        (api.call(Method::POST, "/v1/clusters", op, Some(json!({"name": "x", "os": "ws1999"}))).await,
            StatusCode::UNPROCESSABLE_ENTITY, "validation", Some("os")),
        (api.call(Method::POST, "/v1/clusters", op, Some(json!({"name": "x".repeat(256), "os": "ws2003"}))).await,
            StatusCode::UNPROCESSABLE_ENTITY, "validation", Some("name")),
        (api.call(Method::POST, "/v1/clusters", op, Some(json!({"name": "  ", "os": "ws2003"}))).await,
            StatusCode::UNPROCESSABLE_ENTITY, "validation", Some("name")),
        (api.call(Method::POST, "/v1/clusters", op, Some(json!({"name": "FS-OLD", "os": "ws2008"}))).await,
            StatusCode::CONFLICT, "conflict", None),
        (api.raw(Method::POST, "/v1/clusters", "text/plain", "{\"name\": \"x\", \"os\": \"ws2003\"}").await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", None),
        (api.call(Method::PATCH, "/v1/clusters/FS-OLD", op, Some(json!({"os": "nt4"}))).await,
            StatusCode::UNPROCESSABLE_ENTITY, "validation", Some("os")),
        (api.call(Method::PATCH, "/v1/clusters/nope", op, Some(json!({"description": "x"}))).await,
            StatusCode::NOT_FOUND, "not-found", None),
        (api.call(Method::DELETE, "/v1/clusters/nope", op, None).await,
            StatusCode::NOT_FOUND, "not-found", None),
        (api.call(Method::GET, "/v1/clusters?limit=abc", op, None).await,
            StatusCode::BAD_REQUEST, "bad-request", None),
        (api.call(Method::GET, "/v1/clusters?limit=5000", op, None).await,
            StatusCode::UNPROCESSABLE_ENTITY, "validation", Some("limit")),
        (api.call(Method::GET, "/v1/clusters?cursor=%%%", op, None).await,
            StatusCode::BAD_REQUEST, "bad-request", None),
        (api.call(Method::GET, "/v1/clusters/FS-OLD/snapshots/abc", op, None).await,
            StatusCode::BAD_REQUEST, "bad-request", None),
        (api.call(Method::GET, "/v1/groups/no-such-group", op, None).await,
            StatusCode::NOT_FOUND, "not-found", None),
        (api.call(Method::GET, "/v1/nowhere", op, None).await,
            StatusCode::NOT_FOUND, "not-found", None),
        (api.call(Method::PUT, "/v1/clusters/FS-OLD/inventory", op,
            Some(json!({"nodes": [{"name": "n1"}], "groups": [{"name": "G", "state": "online", "owner_node": "ghost",
                "resources": [{"name": "r", "kind": "generic", "state": "online", "depends_on": ["missing"]}],
                "shares": [{"name": "S", "path": ""}, {"name": "s", "path": "F:\\s"}]}]}))).await,
            StatusCode::UNPROCESSABLE_ENTITY, "validation", Some("groups[0].resources[0].depends_on[0]")),
        (api.call(Method::PUT, "/v1/clusters/FS-OLD/inventory", op,
            Some(json!({"groups": [{"name": "G", "state": "sideways"}]}))).await,
            StatusCode::UNPROCESSABLE_ENTITY, "validation", Some("groups[0].state")),
        (api.call(Method::POST, "/v1/tokens", Some(api.admin.as_str()), Some(json!({"name": "t", "role": "root"}))).await,
            StatusCode::UNPROCESSABLE_ENTITY, "validation", Some("role")),
        (api.call(Method::POST, "/v1/tokens", Some(api.admin.as_str()), Some(json!({"name": "viewer", "role": "viewer"}))).await,
            StatusCode::CONFLICT, "conflict", None),
    ];
    for (i, (reply, status, problem, field)) in cases.iter().enumerate() {
        assert_eq!(reply.status, *status, "case {i}: {}", reply.body);
        assert_eq!(
            reply.problem_type(),
            format!("urn:ferry:problem:{problem}"),
            "case {i}"
        );
        assert_eq!(reply.body["status"], status.as_u16(), "case {i}");
        let detail = reply.body["detail"].as_str().unwrap();
        assert!(!detail.is_empty(), "case {i}");
        for leak in ["sqlx", "SQLITE", "constraint", "duplicate key", "violates"] {
            assert!(
                !detail.contains(leak),
                "case {i} leaks database text: {detail}"
            );
        }
        if let Some(field) = field {
            let fields: Vec<&str> = reply.body["errors"]
                .as_array()
                .unwrap_or_else(|| panic!("case {i} lists field errors: {}", reply.body))
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert!(
                fields.contains(field),
                "case {i}: {field} not in {fields:?}"
            );
        }
    }
    // The invalid inventory lists every problem, not just the first.
    let r = &cases[18].0;
    assert!(
        r.body["errors"].as_array().unwrap().len() >= 4,
        "{}",
        r.body
    );
    assert_eq!(
        api.state().await,
        before,
        "rejected requests change nothing"
    );
});

/// A struct could be read from an array of its fields in order; a body is an object or nothing.
#[tokio::test]
async fn a_body_that_is_not_an_object_is_refused() {
    let (store, dir) = common::sqlite_store().await;
    let api = Api::new(store, Some(dir)).await;
    api.create_cluster("FS-OLD", "ws2003").await;
    let before = api.state().await;
    for body in ["[null, null]", "  [\"x\", \"ws2003\"]", "\"text\"", "7"] {
        let r = api
            .raw(Method::POST, "/v1/clusters", "application/json", body)
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
        assert_eq!(r.body["errors"][0]["field"], "body", "{body}");
    }
    let r = api
        .raw(
            Method::POST,
            "/v1/clusters/FS-OLD/validations",
            "application/json",
            "[null, null]",
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(api.state().await, before);
}

#[tokio::test]
async fn body_over_the_limit_is_413_and_changes_nothing() {
    let (store, dir) = common::sqlite_store().await;
    let options = HttpOptions {
        max_body_bytes: 2048,
        max_inventory_bytes: 64 * 1024,
        cors_origins: vec![],
        ..HttpOptions::default()
    };
    let api = Api::with_options(store, Some(dir), options).await;
    api.create_cluster("FS-OLD", "ws2003").await;
    let before = api.state().await;
    let r = api
        .import("FS-OLD", &common::sample_inventory(10, 50, 3))
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.problem_type(), "urn:ferry:problem:payload-too-large");
    let r = api
        .call(
            Method::POST,
            "/v1/clusters",
            Some(&api.operator),
            Some(json!({"name": "x", "os": "ws2003", "description": "d".repeat(4000)})),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(api.state().await, before);
    // The import route takes more than the default limit.
    let r = api
        .import("FS-OLD", &common::sample_inventory(2, 10, 3))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// A page on an allowed origin may follow the event stream and resume it: the preflight allows
/// the token and `Last-Event-ID`; another origin gets no CORS grant.
#[tokio::test]
async fn an_allowed_origin_may_resume_the_event_stream() {
    let (store, dir) = common::sqlite_store().await;
    let options = HttpOptions {
        cors_origins: vec!["https://console.example".into()],
        ..HttpOptions::default()
    };
    let api = Api::with_options(store, Some(dir), options).await;
    let preflight = |origin: &'static str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/v1/events")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,last-event-id",
            )
            .body(Body::empty())
            .unwrap()
    };
    let allowed = api.send(preflight("https://console.example")).await;
    assert_eq!(
        allowed.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://console.example"
    );
    let headers = allowed.headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for needed in ["authorization", "last-event-id"] {
        assert!(headers.contains(needed), "{needed} not in {headers}");
    }
    let other = api.send(preflight("https://elsewhere.example")).await;
    assert!(
        !other
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

on_every_store!(idempotency_keys_replay_the_first_answer, |api| {
    let body = json!({"name": "FS-NEW", "os": "ws2016"});
    let key = [("idempotency-key", "create-fs-new-1")];
    let first = api
        .request(
            Method::POST,
            "/v1/clusters",
            Some(&api.operator),
            Some(body.clone()),
            &key,
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = api
        .request(
            Method::POST,
            "/v1/clusters",
            Some(&api.operator),
            Some(body),
            &key,
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, first.body, "same answer, no second cluster");
    let different = api
        .request(
            Method::POST,
            "/v1/clusters",
            Some(&api.operator),
            Some(json!({"name": "FS-OTHER", "os": "ws2016"})),
            &key,
        )
        .await;
    assert_eq!(different.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = api
        .call(Method::GET, "/v1/clusters", Some(&api.viewer), None)
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);

    // A failed request releases its key, so the corrected retry can use it.
    let key = [("idempotency-key", "token-ci")];
    let bad = api
        .request(
            Method::POST,
            "/v1/tokens",
            Some(&api.admin),
            Some(json!({"name": "", "role": "viewer"})),
            &key,
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = json!({"name": "ci", "role": "viewer"});
    let first = api
        .request(
            Method::POST,
            "/v1/tokens",
            Some(&api.admin),
            Some(body.clone()),
            &key,
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let secret = first.body["token"].as_str().unwrap().to_string();
    let again = api
        .request(
            Method::POST,
            "/v1/tokens",
            Some(&api.admin),
            Some(body),
            &key,
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["id"], first.body["id"]);
    assert!(
        again.body["token"].is_null(),
        "secrets are never stored, so never replayed"
    );
    let r = api
        .call(Method::GET, "/v1/clusters", Some(&secret), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "the new token works");
});

on_every_store!(tokens_can_be_revoked_and_mutations_are_audited, |api| {
    let r = api
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&api.admin),
            Some(json!({"name": "pipeline", "role": "operator"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let secret = r.body["token"].as_str().unwrap().to_string();
    let id = r.body["id"].as_str().unwrap().to_string();
    let listed = api
        .call(Method::GET, "/v1/tokens", Some(&api.admin), None)
        .await;
    assert!(
        !listed.body.to_string().contains(&secret),
        "lists never show secrets"
    );

    let r = api
        .call(
            Method::POST,
            "/v1/clusters",
            Some(&secret),
            Some(json!({"name": "A", "os": "ws2008"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = api
        .call(
            Method::POST,
            "/v1/clusters",
            Some(&api.viewer),
            Some(json!({"name": "B", "os": "ws2008"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api
        .call(
            Method::DELETE,
            &format!("/v1/tokens/{id}"),
            Some(&api.admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["revoked_at"].is_string());
    let r = api
        .call(Method::GET, "/v1/clusters", Some(&secret), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body["detail"].as_str().unwrap().contains("revoked"));

    let r = api
        .call(Method::GET, "/v1/audit?limit=1000", Some(&api.viewer), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let records = r.body["items"].as_array().unwrap();
    let summary: Vec<(String, String, String, String)> = records
        .iter()
        .map(|a| {
            (
                a["actor"].as_str().unwrap().to_string(),
                a["action"].as_str().unwrap().to_string(),
                a["target"].as_str().unwrap().to_string(),
                a["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("admin", "token.revoke", format!("token:{id}"), "success"),
        (
            "viewer",
            "cluster.create",
            "cluster:B".to_string(),
            "denied",
        ),
        (
            "pipeline",
            "cluster.create",
            "cluster:A".to_string(),
            "success",
        ),
        (
            "admin",
            "token.create",
            "token:pipeline".to_string(),
            "success",
        ),
    ];
    let expected: Vec<(String, String, String, String)> = expected
        .into_iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c, d.to_string()))
        .collect();
    assert_eq!(summary, expected, "newest first");
    assert!(records.iter().all(|a| a["at"].is_string()));

    let r = api
        .call(
            Method::GET,
            "/v1/audit?outcome=denied",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = api
        .call(
            Method::GET,
            "/v1/audit?action=cluster.create&limit=1",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let next = r.body["next"].as_str().unwrap();
    let r = api
        .call(
            Method::GET,
            &format!("/v1/audit?action=cluster.create&limit=1&cursor={next}"),
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(r.body["items"][0]["target"], "cluster:A");
});

// Every route, with no token, a revoked token, an expired token, and each role.
on_every_store!(auth_matrix, |api| {
    api.create_cluster("FS-OLD", "ws2003").await;
    api.import("FS-OLD", &small_inventory()).await;
    let mut next = small_inventory();
    next.groups.pop();
    api.import("FS-OLD", &next).await;
    let group = next.groups[0].name.clone();
    let group_path = format!("FS-OLD%2F{}", urlencode(&group));

    // (method, path, body, least role). Paths that change state get a fresh target each time.
    type Route = (Method, String, Option<Value>, Option<Role>);
    let routes = |n: usize, victim: &str, token_id: &str| -> Vec<Route> {
        vec![
            (Method::GET, "/healthz".into(), None, None),
            (Method::GET, "/readyz".into(), None, None),
            (Method::GET, "/metrics".into(), None, None),
            (Method::GET, "/openapi.json".into(), None, None),
            (Method::GET, "/v1/clusters".into(), None, Some(Role::Viewer)),
            (
                Method::POST,
                "/v1/clusters".into(),
                Some(json!({"name": format!("new-{n}"), "os": "ws2019"})),
                Some(Role::Operator),
            ),
            (
                Method::GET,
                "/v1/clusters/FS-OLD".into(),
                None,
                Some(Role::Viewer),
            ),
            (
                Method::PATCH,
                "/v1/clusters/FS-OLD".into(),
                Some(json!({"description": format!("d{n}")})),
                Some(Role::Operator),
            ),
            (
                Method::DELETE,
                format!("/v1/clusters/{victim}"),
                None,
                Some(Role::Operator),
            ),
            (
                Method::PUT,
                format!("/v1/clusters/{victim}/inventory"),
                Some(serde_json::to_value(small_inventory()).unwrap()),
                Some(Role::Operator),
            ),
            (
                Method::GET,
                "/v1/clusters/FS-OLD/snapshots".into(),
                None,
                Some(Role::Viewer),
            ),
            (
                Method::GET,
                "/v1/clusters/FS-OLD/snapshots/1".into(),
                None,
                Some(Role::Viewer),
            ),
            (
                Method::GET,
                "/v1/clusters/FS-OLD/snapshots/1/diff/2".into(),
                None,
                Some(Role::Viewer),
            ),
            (
                Method::GET,
                "/v1/clusters/FS-OLD/groups".into(),
                None,
                Some(Role::Viewer),
            ),
            (
                Method::GET,
                format!("/v1/groups/{group_path}"),
                None,
                Some(Role::Viewer),
            ),
            (
                Method::GET,
                format!("/v1/groups/{group_path}/shares"),
                None,
                Some(Role::Viewer),
            ),
            (Method::GET, "/v1/audit".into(), None, Some(Role::Viewer)),
            (Method::GET, "/v1/tokens".into(), None, Some(Role::Admin)),
            (
                Method::POST,
                "/v1/tokens".into(),
                Some(json!({"name": format!("t-{n}"), "role": "viewer"})),
                Some(Role::Admin),
            ),
            (
                Method::DELETE,
                format!("/v1/tokens/{token_id}"),
                None,
                Some(Role::Admin),
            ),
        ]
    };
    let callers: Vec<(&str, Option<&str>, Option<Role>)> = vec![
        ("no token", None, None),
        ("garbage token", Some("fy_not-a-real-token"), None),
        ("revoked", Some(api.revoked.as_str()), None),
        ("expired", Some(api.expired.as_str()), None),
        ("viewer", Some(api.viewer.as_str()), Some(Role::Viewer)),
        (
            "operator",
            Some(api.operator.as_str()),
            Some(Role::Operator),
        ),
        ("admin", Some(api.admin.as_str()), Some(Role::Admin)),
    ];
    let mut n = 0;
    for (who, token, role) in &callers {
        let route_count = routes(0, "x", "x").len();
        for r in 0..route_count {
            n += 1;
            let victim = format!("victim-{n}");
            api.create_cluster(&victim, "ws2008").await;
            let target = ferry::service::issue_token(
                api.store.as_ref(),
                &NewToken {
                    name: format!("target-{n}"),
                    role: Role::Viewer,
                    ttl_seconds: None,
                },
            )
            .await
            .unwrap();
            let (method, path, body, least) =
                routes(n, &victim, &target.info.id.to_string()).swap_remove(r);
            let reply = api.call(method.clone(), &path, *token, body).await;
            let allowed = match (least, role) {
                (None, _) => true,
                (Some(least), Some(role)) => role >= &least,
                (Some(_), None) => false,
            };
            let label = format!("{who} {method} {path}");
            if allowed {
                assert!(
                    reply.status.is_success(),
                    "{label}: {} {}",
                    reply.status,
                    reply.body
                );
            } else if role.is_none() {
                assert_eq!(
                    reply.status,
                    StatusCode::UNAUTHORIZED,
                    "{label}: {}",
                    reply.body
                );
                assert_eq!(reply.problem_type(), "urn:ferry:problem:unauthenticated");
            } else {
                assert_eq!(
                    reply.status,
                    StatusCode::FORBIDDEN,
                    "{label}: {}",
                    reply.body
                );
                assert_eq!(reply.problem_type(), "urn:ferry:problem:permission-denied");
            }
        }
    }
});

#[tokio::test]
async fn operational_endpoints_and_docs() {
    let (store, dir) = common::sqlite_store().await;
    let api = Api::new(store, Some(dir)).await;
    api.call(Method::GET, "/v1/clusters", Some(&api.viewer), None)
        .await;
    let r = api.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.body.as_str().unwrap();
    assert!(
        text.contains("ferry_requests_total{transport=\"http\",method=\"GET\",route=\"/v1/clusters\",status=\"200\"} 1"),
        "{text}"
    );
    let r = api.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.body["status"], "ready");
    let r = api.call(Method::GET, "/docs/", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.as_str().unwrap().contains("swagger"),
        "Swagger UI is served"
    );
    let r = api.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(r.body["info"]["title"], "Ferry API");
}

/// The console comes from the binary under its own policy, stricter than Swagger UI's (no hash
/// for an inline style), and a browser revalidates it, so a new build is never hidden.
#[tokio::test]
async fn the_console_is_served_from_the_binary_under_a_strict_policy() {
    let (store, dir) = common::sqlite_store().await;
    let api = Api::new(store, Some(dir)).await;
    let r = api.call(Method::GET, "/console", None, None).await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers[header::LOCATION], "/console/");

    let page = api.call(Method::GET, "/console/", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert!(
        page.body.as_str().unwrap().contains("assets/console.js"),
        "{}",
        page.body
    );
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert_eq!(csp, ferry::http::console::CONSOLE_CSP);
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(
            csp.split(';').any(|d| d.trim() == directive),
            "{directive} in {csp}"
        );
    }
    assert!(!csp.contains("unsafe") && !csp.contains("http"), "{csp}");
    assert_eq!(page.headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-cache");

    for (path, content_type) in [
        (
            "/console/assets/console.js",
            "text/javascript; charset=utf-8",
        ),
        ("/console/assets/console.css", "text/css; charset=utf-8"),
    ] {
        let r = api.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.headers[header::CONTENT_TYPE], content_type, "{path}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{path}");
        let etag = r.headers[header::ETAG].to_str().unwrap().to_string();
        let again = api
            .request(Method::GET, path, None, None, &[("if-none-match", &etag)])
            .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(again.body, Value::Null);
        let stale = api
            .request(Method::GET, path, None, None, &[("if-none-match", "\"0\"")])
            .await;
        assert_eq!(stale.status, StatusCode::OK, "{path}");
    }
    for missing in [
        "/console/assets/other.js",
        "/console/../openapi.json",
        "/console/ferry.db",
    ] {
        let r = api.call(Method::GET, missing, None, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{missing}");
    }
}

/// `console_dir` serves a console being developed from its folder, read on each request, and
/// still only the files the console is made of.
#[tokio::test]
async fn the_console_may_be_served_from_a_folder_while_it_is_developed() {
    let (store, dir) = common::sqlite_store().await;
    let console = tempfile::tempdir().unwrap();
    std::fs::create_dir(console.path().join("assets")).unwrap();
    std::fs::write(console.path().join("index.html"), "<p>in development</p>").unwrap();
    std::fs::write(console.path().join("assets/console.js"), "1").unwrap();
    std::fs::write(console.path().join("secret.txt"), "not part of the console").unwrap();
    let options = HttpOptions {
        console_dir: Some(console.path().to_path_buf()),
        ..HttpOptions::default()
    };
    let api = Api::with_options(store, Some(dir), options).await;
    let page = api.call(Method::GET, "/console/", None, None).await;
    assert_eq!(page.body, "<p>in development</p>");
    std::fs::write(console.path().join("assets/console.js"), "2").unwrap();
    let script = api
        .call(Method::GET, "/console/assets/console.js", None, None)
        .await;
    assert_eq!(script.body, 2, "read again on each request");
    for missing in ["/console/secret.txt", "/console/assets/console.css"] {
        let r = api.call(Method::GET, missing, None, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{missing}");
    }
}

/// `GET /v1/me` tells a client whose token it holds and its role, for every role, and nothing
/// without a valid token.
#[tokio::test]
async fn me_names_the_callers_token_and_role() {
    let (store, dir) = common::sqlite_store().await;
    let api = Api::new(store, Some(dir)).await;
    for (token, role) in [
        (&api.viewer, "viewer"),
        (&api.operator, "operator"),
        (&api.admin, "admin"),
    ] {
        let r = api.call(Method::GET, "/v1/me", Some(token), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["role"], role);
        assert_eq!(r.body["name"], role);
        assert!(
            r.body["token_id"]
                .as_str()
                .unwrap()
                .parse::<uuid::Uuid>()
                .is_ok()
        );
        assert!(r.body.get("token").is_none() && r.body.get("hash").is_none());
    }
    for token in [None, Some(api.revoked.as_str()), Some(api.expired.as_str())] {
        let r = api.call(Method::GET, "/v1/me", token, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn every_answer_says_nosniff_and_html_carries_a_strict_csp() {
    let (store, dir) = common::sqlite_store().await;
    let api = Api::new(store, Some(dir)).await;
    for path in [
        "/healthz",
        "/openapi.json",
        "/v1/nowhere",
        "/docs/swagger-ui.css",
    ] {
        let r = api.call(Method::GET, path, None, None).await;
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{path}");
        assert!(
            !r.headers.contains_key(header::CONTENT_SECURITY_POLICY),
            "{path} is not HTML"
        );
    }
    let r = api
        .call(Method::GET, "/v1/clusters", Some(&api.viewer), None)
        .await;
    assert_eq!(r.headers["x-content-type-options"], "nosniff");

    let page = api.call(Method::GET, "/docs/", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert_eq!(csp, ferry::http::DOCS_CSP);
    let directive = |name: &str| {
        csp.split(';')
            .map(str::trim)
            .find(|d| d.split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("{name} in {csp}"))
            .to_string()
    };
    assert_eq!(directive("default-src"), "default-src 'none'");
    assert_eq!(directive("script-src"), "script-src 'self'");
    assert_eq!(directive("connect-src"), "connect-src 'self'");
    assert_eq!(directive("frame-ancestors"), "frame-ancestors 'none'");
    assert!(!csp.contains("unsafe-"), "{csp}");

    // The page itself needs no more: every script is a file of this origin, and nothing is
    // inline (no script body, no <style>, no style attribute).
    let html = page.body.as_str().unwrap();
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert!(scripts.len() >= 3, "{html}");
    for script in &scripts {
        let (open, rest) = script.split_once('>').unwrap();
        assert!(open.contains("src=\"./"), "a script of this origin: {open}");
        assert!(
            rest.split("</script>").next().unwrap().trim().is_empty(),
            "no inline script: {script}"
        );
    }
    assert!(
        !html.contains("<style") && !html.contains("style="),
        "{html}"
    );
    for script in [
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "swagger-initializer.js",
    ] {
        assert!(html.contains(&format!("src=\"./{script}\"")), "{script}");
        let r = api
            .call(Method::GET, &format!("/docs/{script}"), None, None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{script}");
    }

    // The one <style> Swagger UI writes (its logo's) is allowed by its hash; an upgrade that
    // changes it fails here instead of silently losing the style.
    let preset = api
        .call(
            Method::GET,
            "/docs/swagger-ui-standalone-preset.js",
            None,
            None,
        )
        .await;
    let preset = preset.body.as_str().unwrap();
    assert!(
        preset.contains(&format!("\"{}\"", ferry::http::DOCS_LOGO_STYLE)),
        "Swagger UI's logo style changed: update DOCS_LOGO_STYLE and the hash in DOCS_CSP"
    );
    use base64::Engine;
    use sha2::Digest;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(
        ferry::http::DOCS_LOGO_STYLE.as_bytes(),
    ));
    assert_eq!(
        directive("style-src"),
        format!("style-src 'self' 'sha256-{hash}'")
    );
}

/// A body that sends `first` and then never another byte, nor its end.
fn stalled_body(first: &'static str) -> Body {
    use futures::StreamExt;
    let first = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
        first.as_bytes(),
    ))]);
    Body::from_stream(first.chain(futures::stream::pending()))
}

/// A body of `len` bytes sent in pieces, with no Content-Length to refuse it by up front.
fn chunked_body(len: usize) -> Body {
    let pieces = (0..len.div_ceil(1024))
        .map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1024])))
        .collect::<Vec<_>>();
    Body::from_stream(futures::stream::iter(pieces))
}

#[tokio::test]
async fn answers_of_the_router_and_its_layers_are_problems_too() {
    let (store, dir) = common::sqlite_store().await;
    let options = HttpOptions {
        max_body_bytes: 2048,
        ..HttpOptions::default()
    };
    let api = Api::with_options(store, Some(dir), options).await;
    let problem = |r: &Reply, status: StatusCode, kind: &str| {
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(r.problem_type(), format!("urn:ferry:problem:{kind}"));
        assert_eq!(r.body["status"], status.as_u16(), "{}", r.body);
        assert!(!r.body["title"].as_str().unwrap().is_empty());
        assert!(!r.body["detail"].as_str().unwrap().is_empty());
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        assert!(r.headers.contains_key("x-request-id"));
    };

    // 404: a route that does not exist, in the API and under Swagger UI's files.
    let r = api.call(Method::GET, "/v2/clusters", None, None).await;
    problem(&r, StatusCode::NOT_FOUND, "not-found");
    let r = api
        .call(Method::GET, "/docs/no-such-file.js", None, None)
        .await;
    problem(&r, StatusCode::NOT_FOUND, "not-found");

    // 405, with the methods the route does take.
    let r = api.call(Method::DELETE, "/healthz", None, None).await;
    problem(&r, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
    assert_eq!(r.headers[header::ALLOW], "GET,HEAD");
    let r = api
        .call(Method::PUT, "/v1/clusters", Some(&api.operator), None)
        .await;
    problem(&r, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
    assert!(r.headers[header::ALLOW].to_str().unwrap().contains("POST"));

    // 400: malformed percent-encoding, where our extractor reads the path and where axum's does
    // (Swagger UI's), whose words are kept as the detail.
    let r = api
        .call(Method::GET, "/v1/clusters/%FF%FE", Some(&api.viewer), None)
        .await;
    problem(&r, StatusCode::BAD_REQUEST, "bad-request");
    let r = api.call(Method::GET, "/docs/%FF%FE", None, None).await;
    problem(&r, StatusCode::BAD_REQUEST, "bad-request");
    assert!(
        r.body["detail"].as_str().unwrap().contains("UTF-8"),
        "{}",
        r.body
    );

    // 415 and 413, the latter also for a body with no Content-Length that grows past the limit.
    let r = api
        .raw(Method::POST, "/v1/clusters", "text/csv", "name,os")
        .await;
    problem(
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    );
    let r = api
        .raw(
            Method::POST,
            "/v1/clusters",
            "application/json",
            "x".repeat(4096),
        )
        .await;
    problem(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    let r = api
        .raw(
            Method::POST,
            "/v1/clusters",
            "application/json",
            chunked_body(8192),
        )
        .await;
    problem(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");

    // A HEAD of a missing route says what a GET would, without the body.
    let request = Request::builder()
        .method(Method::HEAD)
        .uri("/v1/nowhere")
        .body(Body::empty())
        .unwrap();
    let r = api.send(request).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_stalled_body_or_a_request_past_its_time_ends_in_a_problem() {
    let (store, dir) = common::sqlite_store().await;
    let api = Api::with_timeouts(
        store,
        Some(dir),
        HttpOptions::default(),
        Timeouts {
            request: std::time::Duration::from_secs(30),
            body_idle: std::time::Duration::from_millis(200),
        },
    )
    .await;
    let before = api.state().await;
    let r = api
        .raw(
            Method::POST,
            "/v1/clusters",
            "application/json",
            stalled_body("{\"name\": "),
        )
        .await;
    assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT, "{}", r.body);
    assert_eq!(r.problem_type(), "urn:ferry:problem:request-timeout");
    assert_eq!(r.body["status"], 408);
    assert_eq!(
        api.state().await,
        before,
        "abandoned requests change nothing"
    );

    let (store, dir) = common::sqlite_store().await;
    let api = Api::with_timeouts(
        store,
        Some(dir),
        HttpOptions::default(),
        Timeouts {
            request: std::time::Duration::from_millis(300),
            body_idle: std::time::Duration::from_secs(30),
        },
    )
    .await;
    let r = api
        .raw(
            Method::POST,
            "/v1/clusters",
            "application/json",
            stalled_body("{\"name\": "),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.problem_type(), "urn:ferry:problem:unavailable");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("did not finish within 300ms"),
        "{}",
        r.body
    );
    assert_eq!(api.state().await["clusters"]["items"], json!([]));

    // The limit is on the answer's head, not its body: the event stream lives on past it.
    let request = Request::builder()
        .uri("/v1/events")
        .header(header::AUTHORIZATION, format!("Bearer {}", api.viewer))
        .body(Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut events = response.into_body();
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    // Three times the limit later, the stream is still open: asking for its next frame waits
    // (for an event or the keep-alive) instead of ending or failing at once.
    let next = tokio::time::timeout(std::time::Duration::from_millis(300), events.frame()).await;
    assert!(
        next.is_err(),
        "the event stream ended past the request limit: {:?}",
        next.map(|frame| frame.map(|f| f.map(|f| f.is_data())))
    );
}

#[test]
fn committed_openapi_matches_the_code() {
    let generated = ferry::http::openapi_json();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/ferry.v1.json");
    if std::env::var_os("FERRY_UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/ferry.v1.json is stale: run `cargo run -- openapi --output openapi/ferry.v1.json` \
         (or FERRY_UPDATE_OPENAPI=1 cargo test --test http committed_openapi) and commit it"
    );
}

/// No two types give the spec a schema of the same name: utoipa keeps one of them silently, and
/// every field of the other type is then described by the wrong schema (a plan's preflight
/// findings were once described as a validation's findings).
#[test]
fn every_schema_name_belongs_to_one_type() {
    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    sources(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/crates")),
        &mut files,
    );
    let mut owners: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut derives_schema = false;
        let mut renamed: Option<String> = None;
        // A derive may span lines: `#[derive(`, the traits, `)]`.
        let mut in_derive = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with("#[derive(") || in_derive {
                derives_schema |= line.contains("ToSchema");
                in_derive = !line.ends_with(")]");
            } else if let Some(rest) = line.strip_prefix("#[schema(as = ") {
                renamed = Some(rest.trim_end_matches(")]").trim().to_string());
            } else if let Some(name) = ["pub struct ", "pub enum ", "struct ", "enum "]
                .iter()
                .find_map(|p| line.strip_prefix(p))
            {
                if derives_schema {
                    let name: String = name
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    owners
                        .entry(renamed.take().unwrap_or(name.clone()))
                        .or_default()
                        .push(format!("{}: {name}", file.display()));
                }
                derives_schema = false;
                renamed = None;
            } else if !line.starts_with("#[") && !line.starts_with("///") && !line.is_empty() {
                derives_schema = false;
                renamed = None;
            }
        }
    }
    assert!(owners.len() > 100, "{}", owners.len());
    let shared: Vec<_> = owners.iter().filter(|(_, types)| types.len() > 1).collect();
    assert!(
        shared.is_empty(),
        "schema names given by several types: {shared:#?}"
    );
    let spec: Value = serde_json::from_str(&ferry::http::openapi_json()).unwrap();
    assert_eq!(
        spec["components"]["schemas"]["Plan"]["properties"]["findings"]["items"]["$ref"],
        "#/components/schemas/PreflightFinding"
    );
}

/// Every `$ref` of the spec names something that exists: a generated client fails on one that
/// does not, and the drift test above only compares the spec with itself.
#[test]
fn every_reference_of_the_spec_resolves() {
    fn walk<'a>(value: &'a Value, at: String, refs: &mut Vec<(String, &'a str)>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    match (key.as_str(), inner) {
                        ("$ref", Value::String(target)) => refs.push((at.clone(), target)),
                        _ => walk(inner, format!("{at}/{key}"), refs),
                    }
                }
            }
            Value::Array(items) => {
                for (i, inner) in items.iter().enumerate() {
                    walk(inner, format!("{at}/{i}"), refs);
                }
            }
            _ => {}
        }
    }
    let spec: Value = serde_json::from_str(&ferry::http::openapi_json()).unwrap();
    let mut refs = Vec::new();
    walk(&spec, String::new(), &mut refs);
    assert!(refs.len() > 100, "{}", refs.len());
    let dangling: Vec<_> = refs
        .iter()
        .filter(|(_, target)| {
            let pointer = target
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{target}"));
            spec.pointer(pointer).is_none()
        })
        .collect();
    assert!(dangling.is_empty(), "dangling references: {dangling:#?}");
}

/// Every link of the spec leads to an operation that exists, fills parameters that operation
/// has, and every operation on one item is reachable from a list by a link.
#[test]
fn every_link_of_the_spec_leads_somewhere() {
    let spec: Value = serde_json::from_str(&ferry::http::openapi_json()).unwrap();
    let mut operations = std::collections::BTreeMap::new();
    for item in spec["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
                .unwrap_or_default();
            operations.insert(op["operationId"].as_str().unwrap(), (op, params));
        }
    }
    let mut targets = std::collections::BTreeSet::new();
    for (source, (op, _)) in &operations {
        for (status, response) in op["responses"].as_object().unwrap() {
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                let target = link["operationId"].as_str().unwrap();
                let Some((_, params)) = operations.get(target) else {
                    panic!("{source} {status} link {name}: no operation {target}");
                };
                for parameter in link["parameters"].as_object().unwrap().keys() {
                    assert!(
                        params.contains(&parameter.as_str()),
                        "{source} {status} link {name}: {target} has no parameter {parameter}"
                    );
                }
                targets.insert(target);
            }
        }
    }
    for needed in [
        "get_agent",
        "revoke_agent",
        "run_task",
        "get_job",
        "approve_job",
        "cancel_job",
        "retry_group",
        "get_group",
        "list_shares",
        "delete_webhook",
    ] {
        assert!(targets.contains(needed), "no link leads to {needed}");
    }
}

/// The bounds the spec states are the ones the server enforces: each is written as a literal
/// beside its field (utoipa takes no constants), so it is compared with its constant here.
#[test]
fn the_spec_states_the_bounds_the_server_enforces() {
    let spec: Value = serde_json::from_str(&ferry::http::openapi_json()).unwrap();
    let mut limits = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for param in op["parameters"].as_array().into_iter().flatten() {
                if param["name"] == "Idempotency-Key" {
                    let schema = &param["schema"];
                    assert_eq!(schema["minLength"], 1, "{method} {path}");
                    assert_eq!(
                        schema["maxLength"],
                        ferry::service::MAX_IDEMPOTENCY_KEY_LEN,
                        "{method} {path}"
                    );
                    assert!(schema["pattern"].is_string(), "{method} {path}");
                }
                if param["name"] == "limit" {
                    limits += 1;
                    let schema = &param["schema"];
                    assert_eq!(schema["minimum"], 1, "{method} {path}");
                    assert_eq!(
                        schema["maximum"],
                        ferry::service::MAX_PAGE_LIMIT,
                        "{method} {path}"
                    );
                }
            }
        }
    }
    assert!(limits >= 10, "{limits}");
    let schemas = &spec["components"]["schemas"];
    let join = &schemas["NewJoinToken"]["properties"];
    assert_eq!(join["uses"]["maximum"], ferry::model::MAX_JOIN_TOKEN_USES);
    let copy = schemas["Action"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["properties"]["action"]["enum"][0] == "skeleton_copy")
        .expect("the skeleton_copy action");
    assert_eq!(
        copy["properties"]["depth"]["maximum"],
        ferry::model::MAX_SKELETON_DEPTH
    );
    assert_eq!(
        schemas["ClusterPatch"]["properties"]["discovery_interval_seconds"]["maximum"],
        ferry::model::MAX_DISCOVERY_INTERVAL_SECONDS
    );
    assert_eq!(
        spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["application/openmetrics-text"]
    );
}

#[test]
fn every_operation_documents_its_errors() {
    let spec: Value = serde_json::from_str(&ferry::http::openapi_json()).unwrap();
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let responses = op["responses"].as_object().unwrap();
            let errors: Vec<&String> = responses
                .keys()
                .filter(|k| k.starts_with('4') || k.starts_with('5'))
                .collect();
            if path.starts_with("/v1/") {
                for code in ["400", "401", "403", "500"] {
                    assert!(responses.contains_key(code), "{method} {path} lacks {code}");
                }
                if path.contains('{') {
                    assert!(responses.contains_key("404"), "{method} {path} lacks 404");
                }
                assert_eq!(
                    responses["401"]["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem"
                );
            } else if path == "/readyz" {
                assert!(!errors.is_empty());
            }
        }
    }
    assert!(operations >= 19, "{operations}");
}

on_every_store!(validations_judge_posted_facts_and_refuse_bad_ones, |api| {
    api.create_cluster("FS-NEW", "ws2012r2").await;
    let validate = |body: Value| {
        api.call(
            Method::POST,
            "/v1/clusters/FS-NEW/validations",
            Some(&api.operator),
            Some(body),
        )
    };
    let network = |name: &str, role: &str, metric: i64| {
        json!({"name": name, "role": role, "metric": metric, "auto_metric": false,
               "subnet": "10.0.0.0/24", "ipsec_enabled": false,
               "client_for_microsoft_networks": true, "file_and_printer_sharing": true})
    };
    let node = |name: &str, vendor: &str| {
        json!({"name": name, "processor": {"vendor": vendor, "model": "Xeon E5-2670"},
               "virtual_switches": ["External"], "ntlm_enabled": true,
               "hbas": [{"model": "QLE2562", "driver_version": "9.1", "firmware_version": "5.06"}],
               "processor_compatibility": false})
    };
    let facts = json!({
        "networks": [network("Cluster", "csv", 1000), network("Public", "client", 2000),
                     network("LM", "live_migration", 1500)],
        "nodes": [node("N1", "GenuineIntel"), node("N2", "AuthenticAMD")],
        "csv_volumes": [{"name": "Volume1", "path": "C:\\ClusterStorage\\Volume1",
                         "size_bytes": 1000, "free_bytes": 150}],
        "quorum": {"quorum_type": "node_and_disk_majority", "node_count": 2},
        "live_migration_qos": true
    });
    let r = validate(json!({"facts": facts})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let location = r.headers["location"].to_str().unwrap().to_owned();
    assert_eq!(r.body["state"], "completed");
    assert_eq!(r.body["version"], 1);
    assert_eq!(r.body["cluster"], "FS-NEW");
    let verdict = |rule: &str| -> Vec<String> {
        r.body["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule"] == rule)
            .map(|f| f["verdict"].as_str().unwrap().to_owned())
            .collect()
    };
    // Two processor manufacturers: live migration between them fails.
    assert_eq!(verdict("processor_vendor"), ["fail"]);
    assert_eq!(r.body["overall"], "fail");
    // 15% free is under the 20% warning, above the 10% failure.
    assert_eq!(verdict("csv_free_space"), ["warn"]);
    assert_eq!(verdict("csv_network_metric"), ["pass"]);
    let stored = api
        .call(Method::GET, &location, Some(&api.viewer), None)
        .await;
    assert_eq!(stored.status, StatusCode::OK);
    assert_eq!(stored.body, r.body);

    // Stricter thresholds: the same volume now fails; the cluster's second validation.
    let strict = validate(
        json!({"facts": facts, "thresholds": {"csv_free_warn_percent": 40,
                                                        "csv_free_fail_percent": 30}}),
    )
    .await;
    assert_eq!(strict.status, StatusCode::CREATED, "{}", strict.body);
    assert_eq!(strict.body["version"], 2);
    assert!(
        strict.body["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "csv_free_space" && f["verdict"] == "fail")
    );
    let list = api
        .call(
            Method::GET,
            "/v1/clusters/FS-NEW/validations?limit=1",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(list.body["items"][0]["version"], 2, "newest first");
    let next = list.body["next"].as_str().unwrap();
    let older = api
        .call(
            Method::GET,
            &format!("/v1/clusters/FS-NEW/validations?limit=1&cursor={next}"),
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(older.body["items"][0]["version"], 1);

    // Refused whole, nothing stored: bad thresholds, a malformed fact, a viewer, no cluster.
    let bad = validate(
        json!({"facts": facts, "thresholds": {"csv_free_warn_percent": 10,
                                                        "csv_free_fail_percent": 20}}),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert_eq!(
        bad.body["errors"][0]["field"],
        "thresholds.csv_free_fail_percent"
    );
    let malformed = validate(json!({"facts": {"nodes": [{"name": "N1"}]}})).await;
    assert_eq!(
        malformed.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        malformed.body
    );
    let viewer = api
        .call(
            Method::POST,
            "/v1/clusters/FS-NEW/validations",
            Some(&api.viewer),
            Some(json!({"facts": facts})),
        )
        .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);
    let nowhere = api
        .call(
            Method::POST,
            "/v1/clusters/NOPE/validations",
            Some(&api.operator),
            Some(json!({"facts": facts})),
        )
        .await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    let all = api
        .call(
            Method::GET,
            "/v1/clusters/FS-NEW/validations",
            Some(&api.viewer),
            None,
        )
        .await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 2);
    // A retried POST with its Idempotency-Key answers the first validation again.
    let key = [("idempotency-key", "validate-fs-new-3")];
    let body = json!({"facts": facts});
    let first = api
        .request(
            Method::POST,
            "/v1/clusters/FS-NEW/validations",
            Some(&api.operator),
            Some(body.clone()),
            &key,
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = api
        .request(
            Method::POST,
            "/v1/clusters/FS-NEW/validations",
            Some(&api.operator),
            Some(body),
            &key,
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, first.body);
    assert_eq!(first.body["version"], 3);
});
