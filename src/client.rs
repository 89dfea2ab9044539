//! A small REST client for the command line's verbs and the demo: JSON in and out, bearer token,
//! problem+json errors turned into messages, and the `/v1/events` stream read event by event.
//! `http://` or `https://` servers; HTTPS is verified against the public web roots, or only
//! against a pinned CA (`--ca`), with the same TLS as webhook delivery
//! ([`crate::webhooks::outbound_client`]). Redirects are not followed: a 3xx is an answer, so a
//! token is never sent anywhere but the address given.

use std::time::Duration;

use http::{Method, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::JobEvent;
use crate::webhooks::{describe_error, outbound_client};

/// Longest a call may take, answer included; the event stream is bounded by
/// [`EVENTS_READ_TIMEOUT`] instead, since it stays open by design.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The server writes a keep-alive on the event stream every 15 s; when three in a row are
/// missing the connection is taken as dead and the stream is resumed on a new one.
pub const EVENTS_READ_TIMEOUT: Duration = Duration::from_secs(45);

/// Why a call failed, split so the command line can pick its exit code.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error; `message` is the problem's title and detail.
    #[error("{message}")]
    Api { status: StatusCode, message: String },
    /// The server could not be reached (TLS refused included), did not answer in time, or the
    /// connection broke before the answer was read.
    #[error("{0}")]
    Unreachable(String),
    /// The server answered success with a body that is not what the call expects.
    #[error("{0}")]
    BadAnswer(String),
    /// The server address, the pinned CA or the request itself is malformed; nothing was sent.
    #[error("{0}")]
    BadRequest(String),
}

#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    /// Calls that answer at once, bounded by [`REQUEST_TIMEOUT`].
    http: reqwest::Client,
    /// The event stream, bounded by [`EVENTS_READ_TIMEOUT`] between reads.
    events: reqwest::Client,
}

impl ApiClient {
    /// `base` is the server's REST address, e.g. `http://127.0.0.1:8080`; an `https://` server
    /// must present a certificate the public web roots vouch for.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        Self::with_ca(base, token, None)
    }

    /// [`ApiClient::new`], trusting only the CA certificates of `ca_pem` (a PEM file's bytes)
    /// for an `https://` server when given.
    pub fn with_ca(
        base: &str,
        token: Option<String>,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/').to_owned();
        let scheme = base.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("http" | "https")) {
            return Err(ClientError::BadRequest(format!(
                "the server address must start with http:// or https://, got `{base}`"
            )));
        }
        if let Err(e) = reqwest::Url::parse(&base) {
            return Err(ClientError::BadRequest(format!(
                "the server address `{base}` is not a URL: {e}"
            )));
        }
        let build = |configure: fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder| {
            let builder = outbound_client(ca_pem)
                .map_err(|e| ClientError::BadRequest(format!("the pinned CA {e}")))?;
            configure(builder).build().map_err(|e| {
                ClientError::BadRequest(format!(
                    "cannot set up the HTTP client: {}",
                    describe_error(e)
                ))
            })
        };
        Ok(ApiClient {
            http: build(|b| b.timeout(REQUEST_TIMEOUT))?,
            events: build(|b| b.read_timeout(EVENTS_READ_TIMEOUT))?,
            base,
            token,
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(Method::GET, path, None::<&()>).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        self.send(Method::POST, path, Some(body)).await
    }

    /// The answer as the server wrote it, for `--output json`: a type of this crate would drop
    /// fields a newer server adds.
    pub async fn get_value(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        self.send(Method::GET, path, None::<&()>).await
    }

    pub async fn post_value(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<serde_json::Value, ClientError> {
        self.send(Method::POST, path, Some(body)).await
    }

    fn request(
        &self,
        client: &reqwest::Client,
        method: Method,
        path: &str,
        accept: &'static str,
    ) -> reqwest::RequestBuilder {
        let mut request = client
            .request(method, format!("{}{path}", self.base))
            .header(header::ACCEPT, accept);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    /// The body of a successful answer, decoded; an error status (a redirect included) becomes
    /// [`ClientError::Api`].
    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let mut request = self.request(&self.http, method, path, "application/json");
        if let Some(body) = body {
            let body = serde_json::to_vec(body)
                .map_err(|e| ClientError::BadRequest(format!("encoding the request: {e}")))?;
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.map_err(|e| self.failed(e))?;
        let status = response.status();
        let location = location(&response);
        let bytes = response.bytes().await.map_err(|e| {
            if e.is_timeout() {
                self.failed(e)
            } else {
                ClientError::Unreachable(format!("reading the answer: {}", describe_error(e)))
            }
        })?;
        if !status.is_success() {
            return Err(ClientError::Api {
                status,
                message: answer_message(status, location.as_deref(), &bytes),
            });
        }
        decode(&bytes)
    }

    /// A request that got no answer: nothing sent when reqwest refused to build it, otherwise
    /// the server is out of reach (no connection, TLS refused, no answer in time).
    fn failed(&self, e: reqwest::Error) -> ClientError {
        if e.is_builder() {
            ClientError::BadRequest(format!("bad request: {}", describe_error(e)))
        } else if e.is_timeout() && !e.is_connect() {
            ClientError::Unreachable(format!(
                "the Ferry server at {} did not answer within {} s",
                self.base,
                REQUEST_TIMEOUT.as_secs()
            ))
        } else {
            ClientError::Unreachable(format!(
                "cannot reach the Ferry server at {}: {}",
                self.base,
                describe_error(e)
            ))
        }
    }

    /// Follows `/v1/events` (of one job, when given) from `after`, handing each event to
    /// `on_event` until it returns false. Reconnects after a dropped (or silent) stream,
    /// resuming after the last event seen.
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
            let request = self.request(&self.events, Method::GET, &path, "text/event-stream");
            let mut response = match request.send().await {
                Ok(response) => response,
                Err(e) if e.is_builder() => return Err(self.failed(e)),
                Err(e) => {
                    failures += 1;
                    if failures > 5 {
                        return Err(self.failed(e));
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let status = response.status();
            if !status.is_success() {
                let location = location(&response);
                let bytes = response.bytes().await.unwrap_or_default();
                return Err(ClientError::Api {
                    status,
                    message: answer_message(status, location.as_deref(), &bytes),
                });
            }
            failures = 0;
            // Bytes, not text, until an event is whole: a chunk may end inside a character.
            let mut pending: Vec<u8> = Vec::new();
            // An error here is a broken or silent connection: resume below, like an ended one.
            while let Ok(Some(data)) = response.chunk().await {
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

/// Where a redirect points, for the message that says it was not followed.
fn location(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned)
}

/// What an unsuccessful answer says: the problem+json, or for a redirect where it points (a
/// proxy sending `http://` to `https://`, say), since the fix is a different `--server`.
fn answer_message(status: StatusCode, location: Option<&str>, body: &[u8]) -> String {
    if status.is_redirection() {
        let target = location.map(|l| format!(" to {l}")).unwrap_or_default();
        return format!(
            "the server answered {status}{target}; redirects are not followed: give the address \
             it names as --server"
        );
    }
    problem_message(status, body)
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
