//! Webhook delivery: every server runs this loop. Each due webhook gets the events after the
//! last one it acknowledged, up to [`BATCH`], as one signed `POST`; a 2xx answer moves its mark
//! forward, anything else backs it off exponentially. Events are never skipped: the mark only
//! moves on success, so a failed batch is posted again, whole.
//!
//! Delivery is at least once. Replicas sharing a database all run the loop, and one posts each
//! batch: before posting, a replica claims the webhook by pushing its `next_attempt` past the
//! request timeout, on the condition that its mark is still what the replica read and nobody
//! else holds it; the mark never moves back. A receiver sees a batch twice only when a server
//! dies (or stops) between the receiver's 2xx and the write of the mark, or when a post outlives
//! its claim. Receivers dedupe by event `seq` (or by the batch's `X-Ferry-Delivery`, the last
//! seq in it); the sequence numbers are stable across retries.
//!
//! Receivers may be `http://` or `https://`. HTTPS receivers are verified against the public web
//! roots, or only against the CA the server's `webhook_ca` pins. A redirect is a failed delivery,
//! never followed: the signed body would otherwise go wherever the receiver points, and a
//! webhook's URL is what an admin chose.
//!
//! The outgoing HTTP client is built here ([`outbound_client`]) and shared with the command
//! line's REST client, so both speak TLS and report connection failures the same way.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use http::header;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::Sha256;
use tokio::sync::watch;
use tokio::task::{self, JoinHandle, JoinSet};
use uuid::Uuid;

use ferry_core::model::{Webhook, WebhookDelivery, WebhookPayload};
use ferry_service::Service;

/// How often the loop looks for due webhooks.
pub const TICK: Duration = Duration::from_millis(500);
/// Events per delivery at most.
pub const BATCH: u32 = 100;
/// A delivery that has not been answered by then has failed.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a connection (TCP and TLS) to a receiver or, for the command line, a server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest pause between attempts, however many failed.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How far a replica pushes `next_attempt` before posting: longer than [`TIMEOUT`], so other
/// replicas skip the webhook while the post runs, and short enough that a replica dying mid-post
/// delays the retry only briefly.
const CLAIM: Duration = Duration::from_secs(30);
/// Batches posted back to back to one webhook before others get a turn, so a receiver far behind
/// catches up quickly without stalling the loop.
const CATCH_UP_BATCHES: usize = 10;
/// Longest `last_error` kept: a receiver's error text is not ours to store whole.
const MAX_ERROR_LEN: usize = 500;

pub const HEADER_WEBHOOK_ID: &str = "x-ferry-webhook-id";
pub const HEADER_DELIVERY: &str = "x-ferry-delivery";
pub const HEADER_SIGNATURE: &str = "x-ferry-signature";

/// `sha256=<hex>`: HMAC-SHA256 of the exact body bytes, keyed with the webhook's secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The pause after the `failures`-th failure in a row (counting from 0): 1 s, 2 s, 4 s ... up
/// to [`MAX_BACKOFF`], plus up to a quarter more at random so receivers that come back are not
/// hit by every webhook at the same instant.
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    let base = Duration::from_secs(1u64 << failures.min(20)).min(MAX_BACKOFF);
    base.mul_f64(1.0 + jitter.clamp(0.0, 1.0) / 4.0)
}

/// The client deliveries are posted with: HTTPS verified against the public roots, or only
/// against the CA certificates of `ca_pem` (the `webhook_ca` setting) when given; at most
/// [`CONNECT_TIMEOUT`] to connect and [`TIMEOUT`] for the whole request; redirects not followed.
pub fn client(ca_pem: Option<&[u8]>) -> anyhow::Result<reqwest::Client> {
    outbound_client(ca_pem)
        .and_then(|builder| {
            builder
                .timeout(TIMEOUT)
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {}", describe_error(e)))
        })
        .map_err(|e| anyhow::anyhow!("webhook delivery: {e}"))
}

/// Starts the delivery loop, posting with `http` (see [`client`]); it runs until `stopped`
/// turns true. Deliveries in flight then are abandoned: their webhooks were claimed, so they are
/// posted again once the claim runs out.
pub fn start(
    service: Service,
    http: reqwest::Client,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // One delivery per webhook at a time on this replica; a slow receiver does not hold up
        // the others.
        let mut running: JoinSet<()> = JoinSet::new();
        let mut busy: HashMap<Uuid, task::Id> = HashMap::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                    // A panicked delivery frees its webhook too, or it would never be tried again.
                    let finished = match done {
                        Ok((id, ())) => id,
                        Err(e) => e.id(),
                    };
                    busy.retain(|_, task| *task != finished);
                    continue;
                }
                _ = stopped.wait_for(|s| *s) => break,
            }
            let hooks = match service.webhooks_to_deliver().await {
                Ok(hooks) => hooks,
                Err(e) => {
                    tracing::warn!(error = %e, "could not list webhooks; retrying");
                    continue;
                }
            };
            let now = Utc::now();
            for hook in hooks {
                if busy.contains_key(&hook.id) || hook.next_attempt.is_some_and(|t| t > now) {
                    continue;
                }
                let id = hook.id;
                let (service, http) = (service.clone(), http.clone());
                let handle = running.spawn(async move {
                    if let Err(e) = deliver(&service, &http, hook).await {
                        tracing::warn!(webhook = %id, error = %e, "webhook delivery not recorded");
                    }
                });
                busy.insert(id, handle.id());
            }
        }
        running.shutdown().await;
        Ok(())
    })
}

/// Posts what `hook` has not acknowledged yet, a batch at a time, until it is caught up, fails,
/// or has had its turn.
async fn deliver(
    service: &Service,
    http: &reqwest::Client,
    mut hook: Webhook,
) -> ferry_core::error::Result<()> {
    for _ in 0..CATCH_UP_BATCHES {
        let events = service.webhook_backlog(&hook, BATCH).await?;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(());
        };
        let full = events.len() == BATCH as usize;
        if !service
            .claim_webhook_delivery(&hook, Utc::now() + CLAIM)
            .await?
        {
            // Another replica is posting it, or already moved its mark.
            return Ok(());
        }
        let body = serde_json::to_vec(&WebhookPayload { events })
            .map_err(ferry_core::error::Error::internal)?;
        match post(http, &hook, last, body).await {
            Ok(()) => {
                hook.delivered = last;
                hook.failures = 0;
                hook.last_error = None;
                service
                    .record_webhook_delivery(
                        hook.id,
                        &WebhookDelivery {
                            delivered: last,
                            failures: 0,
                            next_attempt: None,
                            last_error: None,
                        },
                    )
                    .await?;
                if !full {
                    return Ok(());
                }
            }
            Err(error) => {
                let next = retry_at(Utc::now(), hook.failures, rand::random::<f64>());
                tracing::info!(webhook = %hook.id, url = %hook.url, %error, %next,
                    "webhook delivery failed; will retry");
                service
                    .record_webhook_delivery(
                        hook.id,
                        &WebhookDelivery {
                            delivered: hook.delivered,
                            failures: hook.failures.saturating_add(1),
                            next_attempt: Some(next),
                            last_error: Some(error),
                        },
                    )
                    .await?;
                return Ok(());
            }
        }
    }
    Ok(())
}

fn retry_at(now: DateTime<Utc>, failures: u32, jitter: f64) -> DateTime<Utc> {
    now + chrono::Duration::from_std(backoff(failures, jitter))
        .unwrap_or_else(|_| chrono::Duration::seconds(MAX_BACKOFF.as_secs() as i64))
}

/// One signed `POST`; `Err` carries why it did not count as delivered.
async fn post(
    http: &reqwest::Client,
    hook: &Webhook,
    last: i64,
    body: Vec<u8>,
) -> Result<(), String> {
    let signed = signature(&hook.secret, &body);
    let response = http
        .post(&hook.url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(HEADER_WEBHOOK_ID, hook.id.to_string())
        .header(HEADER_DELIVERY, last.to_string())
        .header(HEADER_SIGNATURE, signed)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            // A connection that timed out says so in its causes; this is the whole request's.
            if e.is_timeout() && !e.is_connect() {
                format!("no answer within {} s", TIMEOUT.as_secs())
            } else {
                truncate(describe_error(e))
            }
        })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status.is_redirection() {
        let target = response
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(|l| format!(" to {l}"))
            .unwrap_or_default();
        Err(truncate(format!(
            "the receiver answered {status}{target}; redirects are not followed: register the \
             URL that answers"
        )))
    } else {
        Err(format!("the receiver answered {status}"))
    }
}

// ---- outgoing HTTP, shared with the command line's REST client ---------------------------------

/// A client builder for Ferry's outgoing HTTP: HTTP/1.1, TLS by rustls on ring (aws-lc-rs needs
/// cmake to build, and gRPC already uses ring), verified against the public web roots or, when
/// `ca_pem` is given, against its CA certificates only (a pin, not an addition); redirects
/// refused (a 3xx comes back as the answer); no proxy from the environment, since the servers
/// and receivers Ferry talks to are usually on the operator's own network; [`CONNECT_TIMEOUT`].
/// Callers add the request timeout that suits them.
pub fn outbound_client(ca_pem: Option<&[u8]>) -> Result<reqwest::ClientBuilder, String> {
    let roots = match ca_pem {
        Some(pem) => pinned_roots(pem)?,
        // Mozilla's roots compiled in, as the agents' gRPC client uses them: the same answer on
        // every machine, with or without a CA bundle installed.
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    // The provider is given to this configuration rather than installed process-wide, so no
    // other TLS user of the process depends on the order things start in.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION"))))
}

/// The CA certificates of a PEM file, as the only roots to trust; an error says what is wrong
/// with the file (not PEM, no certificate, a certificate that cannot be a root).
pub fn pinned_roots(pem: &[u8]) -> Result<RootCertStore, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    let mut roots = RootCertStore::empty();
    for (n, cert) in certs.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            format!(
                "holds a certificate (number {}) that cannot be a root: {e}",
                n + 1
            )
        })?;
    }
    Ok(roots)
}

/// A failed request's error with its causes, which say what went wrong (the outermost is only
/// "error sending request"); without the URL, which the caller knows and names if it wants.
pub fn describe_error(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let text = cause.to_string();
        // Wrappers that repeat their inner error's text add nothing.
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn truncate(mut message: String) -> String {
    if message.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_ten_minutes_with_bounded_jitter() {
        assert_eq!(backoff(0, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(1, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(5, 0.0), Duration::from_secs(32));
        assert_eq!(backoff(9, 0.0), Duration::from_secs(512));
        assert_eq!(backoff(10, 0.0), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX, 0.0), MAX_BACKOFF);
        assert_eq!(backoff(2, 1.0), Duration::from_secs(5));
        assert!(backoff(3, 0.5) > backoff(3, 0.0));
    }

    #[test]
    fn the_client_builds_on_ring_with_public_roots() {
        // `tls_backend_preconfigured` only recognises the rustls version reqwest was built
        // with; a mismatch would surface here rather than at a server's start.
        assert!(client(None).is_ok());
    }

    #[test]
    fn pinned_cas_must_be_pem_certificates() {
        let err = pinned_roots(b"").unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
        let err = pinned_roots(b"just text").unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
        let key_only = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let err = pinned_roots(key_only).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = pinned_roots(garbage).unwrap_err();
        assert!(err.contains("cannot be a root"), "{err}");
        let err = client(Some(garbage)).unwrap_err().to_string();
        assert!(err.contains("webhook delivery"), "{err}");
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let cut = truncate("é".repeat(MAX_ERROR_LEN));
        assert!(cut.len() <= MAX_ERROR_LEN);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
