//! A small REST client for the command line's job verbs and the demo: JSON in and out, bearer
//! token, problem+json errors turned into messages, and the `/v1/events` stream read line by line.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::JobEvent;

/// Why a call failed, split so the command line can pick its exit code.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error; `message` is the problem's title and detail.
    #[error("{message}")]
    Api { status: StatusCode, message: String },
    /// The server could not be reached or the answer could not be read.
    #[error("{0}")]
    Transport(String),
}

#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl ApiClient {
    /// `base` is the server's REST address, e.g. `http://127.0.0.1:8080`.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") {
            return Err(ClientError::Transport(format!(
                "the server address must start with http:// (Ferry's REST API is plain HTTP \
                 behind your TLS proxy), got `{base}`"
            )));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        Ok(ApiClient {
            base,
            token,
            http: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::ACCEPT, "application/json");
        if !body.is_empty() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(token) = &self.token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder
            .body(Full::new(body))
            .map_err(|e| ClientError::Transport(format!("bad request to {path}: {e}")))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let body = match body {
            Some(body) => Bytes::from(
                serde_json::to_vec(body)
                    .map_err(|e| ClientError::Transport(format!("encoding the request: {e}")))?,
            ),
            None => Bytes::new(),
        };
        let response = self
            .http
            .request(self.request(method, path, body)?)
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Transport(format!("reading the answer: {e}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(ClientError::Api {
                status,
                message: problem_message(status, &bytes),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Transport(format!("the server's answer is not what was expected: {e}"))
        })
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Transport(format!(
            "cannot reach the Ferry server at {}: {e}",
            self.base
        ))
    }

    /// Follows `/v1/events` (of one job, when given) from `after`, handing each event to
    /// `on_event` until it returns false. Reconnects after a dropped stream, resuming after
    /// the last event seen.
    pub async fn follow_events(
        &self,
        job: Option<uuid::Uuid>,
        mut after: i64,
        mut on_event: impl FnMut(&JobEvent) -> bool,
    ) -> Result<(), ClientError> {
        let mut failures = 0u32;
        loop {
            let mut path = format!("/v1/events?after={after}");
            if let Some(job) = job {
                path.push_str(&format!("&job={job}"));
            }
            let mut request = self.request(Method::GET, &path, Bytes::new())?;
            request.headers_mut().insert(
                header::ACCEPT,
                http::HeaderValue::from_static("text/event-stream"),
            );
            let response = match self.http.request(request).await {
                Ok(response) => response,
                Err(e) => {
                    failures += 1;
                    if failures > 5 {
                        return Err(self.unreachable(e));
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let status = response.status();
            if !status.is_success() {
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                return Err(ClientError::Api {
                    status,
                    message: problem_message(status, &bytes),
                });
            }
            failures = 0;
            let mut body = response.into_body();
            // Bytes, not text, until an event is whole: a frame may end inside a character.
            let mut pending: Vec<u8> = Vec::new();
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                pending.extend_from_slice(&data);
                // An event ends with a blank line; its `data:` lines hold the JSON.
                while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
                    let bytes: Vec<u8> = pending.drain(..end + 2).collect();
                    let block = String::from_utf8_lossy(&bytes);
                    let data: String = block
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(str::trim_start)
                        .collect::<Vec<_>>()
                        .join("\n");
                    if data.is_empty() {
                        continue;
                    }
                    if let Ok(event) = serde_json::from_str::<JobEvent>(&data) {
                        after = after.max(event.seq);
                        if !on_event(&event) {
                            return Ok(());
                        }
                    }
                }
            }
            // The stream ended (server restart, proxy timeout): resume after the last event.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// `title: detail` of a problem+json body, or the status when the body is not one.
fn problem_message(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Problem {
        title: Option<String>,
        detail: Option<String>,
        #[serde(default)]
        errors: Vec<FieldProblem>,
    }
    #[derive(serde::Deserialize)]
    struct FieldProblem {
        field: String,
        message: String,
    }
    match serde_json::from_slice::<Problem>(body) {
        Ok(problem) => {
            let mut message = match (problem.title, problem.detail) {
                (_, Some(detail)) => detail,
                (Some(title), None) => title,
                (None, None) => status.to_string(),
            };
            for field in problem.errors {
                message.push_str(&format!("\n  {}: {}", field.field, field.message));
            }
            message
        }
        Err(_) => format!("the server answered {status}"),
    }
}
