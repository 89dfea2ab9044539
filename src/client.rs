//! A small REST client for the command line's verbs and the demo: JSON in and out, bearer token,
//! problem+json errors turned into messages, and the `/v1/events` stream read line by line.

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
    /// The server could not be reached, or the connection broke before the answer was read.
    #[error("{0}")]
    Unreachable(String),
    /// The server answered success with a body that is not what the call expects.
    #[error("{0}")]
    BadAnswer(String),
    /// The server address or the request itself is malformed; nothing was sent.
    #[error("{0}")]
    BadRequest(String),
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
            return Err(ClientError::BadRequest(format!(
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
        decode(&self.send(Method::GET, path, None::<&()>).await?)
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        decode(&self.send(Method::POST, path, Some(body)).await?)
    }

    /// The answer as the server wrote it, for `--output json`: a type of this crate would drop
    /// fields a newer server adds.
    pub async fn get_value(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        decode(&self.send(Method::GET, path, None::<&()>).await?)
    }

    pub async fn post_value(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<serde_json::Value, ClientError> {
        decode(&self.send(Method::POST, path, Some(body)).await?)
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
            .map_err(|e| ClientError::BadRequest(format!("bad request to {path}: {e}")))
    }

    /// The body of a successful answer; an error status becomes [`ClientError::Api`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Bytes, ClientError> {
        let body = match body {
            Some(body) => Bytes::from(
                serde_json::to_vec(body)
                    .map_err(|e| ClientError::BadRequest(format!("encoding the request: {e}")))?,
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
            .map_err(|e| ClientError::Unreachable(format!("reading the answer: {e}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(ClientError::Api {
                status,
                message: problem_message(status, &bytes),
            });
        }
        Ok(bytes)
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Unreachable(format!(
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

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ClientError::BadAnswer(format!("the server's answer is not what was expected: {e}"))
    })
}

/// `name` as one segment of a URL path: names may hold spaces, backslashes, `/` and `%`.
pub fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `?key=value&...` of the pairs whose value is set, form-encoded; empty when none is.
pub fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (key, value) in pairs {
        if let Some(value) = value {
            serializer.append_pair(key, value);
            any = true;
        }
    }
    if any {
        format!("?{}", serializer.finish())
    } else {
        String::new()
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
