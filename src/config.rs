//! Server configuration, layered: built-in defaults, then an optional TOML file (`--config`), then
//! `FERRY_*` environment variables, then command-line flags. Validated once, at start, with
//! messages that name the bad setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `sqlite://ferry.db` (created if missing) or `postgres://user@host/db`.
    pub database_url: String,
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// When set, an admin token with exactly this value exists after start.
    pub bootstrap_token: Option<String>,
    /// Origins allowed by CORS, e.g. `https://console.example.com`; `*` allows any.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub cors_origins: Vec<String>,
    pub log_format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `warn,ferry=debug`.
    pub log_level: String,
    /// Largest request body in bytes, except inventory imports.
    pub max_body_bytes: usize,
    /// Largest inventory document in bytes (`PUT /v1/clusters/{id}/inventory`).
    pub max_inventory_bytes: usize,
    /// How often agents send a heartbeat, in milliseconds.
    pub agent_heartbeat_ms: u64,
    /// How long a task lease lasts without a heartbeat or progress renewing it.
    pub agent_lease_ms: u64,
    /// Heartbeat TTL plus grace: an agent silent this long is marked down.
    pub agent_down_after_ms: u64,
    /// How long a claim of the scheduler lease lasts: with several replicas, how long the others
    /// wait for a holder that stopped before one takes over the jobs.
    pub scheduler_lease_ms: u64,
    /// PEM certificate chain for the gRPC listener; with `tls_key`, gRPC is served over TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s) that `https://` webhook receivers must chain to, instead of the
    /// public web roots: for receivers whose certificates a private CA signs.
    pub webhook_ca: Option<PathBuf>,
    /// Rows that replace (same `from` and `to`) or extend the built-in hop table, e.g. when a
    /// field report contradicts a row. In TOML: `[[hop_overrides]]` tables.
    pub hop_overrides: Vec<crate::plan::HopRule>,
    /// How long raw perf samples are kept, in hours.
    pub perf_raw_retention_hours: u64,
    /// How long 1-minute perf rollups are kept, in days.
    pub perf_minute_retention_days: u64,
    /// How long 1-hour perf rollups are kept, in days.
    pub perf_hour_retention_days: u64,
    /// How often landed perf batches are merged into chunks, in milliseconds.
    pub perf_compact_ms: u64,
    /// How often each cluster's agents read it for a new snapshot (a cluster's own
    /// `discovery_interval_seconds` wins), e.g. `1h`, `30m` or a number of seconds; 0 turns
    /// periodic discovery off.
    #[serde(with = "duration_text")]
    pub discovery_interval: std::time::Duration,
    /// Serve the web console from this folder (a `console/dist` built by `npm run build`)
    /// instead of the copy built into the binary: for developing the console.
    pub console_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        // The layers' own defaults, so each is written once.
        let http = crate::http::HttpOptions::default();
        let timing = crate::model::AgentTiming::default();
        let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            database_url: "sqlite://ferry.db".into(),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            bootstrap_token: None,
            cors_origins: http.cors_origins,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            max_body_bytes: http.max_body_bytes,
            max_inventory_bytes: http.max_inventory_bytes,
            agent_heartbeat_ms: millis(timing.heartbeat),
            agent_lease_ms: millis(timing.lease),
            agent_down_after_ms: millis(timing.down_after),
            scheduler_lease_ms: millis(crate::scheduler::DEFAULT_LEASE),
            tls_cert: None,
            tls_key: None,
            webhook_ca: None,
            hop_overrides: Vec::new(),
            perf_raw_retention_hours: 48,
            perf_minute_retention_days: 30,
            perf_hour_retention_days: 365,
            perf_compact_ms: 60_000,
            discovery_interval: std::time::Duration::from_secs(3600),
            console_dir: None,
        }
    }
}

/// Settings given as flags; `None` leaves the lower layers' value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
}

/// Every setting; each is also read from the environment as `FERRY_<KEY>` in upper case.
pub const KEYS: [&str; 23] = [
    "database_url",
    "http_addr",
    "grpc_addr",
    "bootstrap_token",
    "cors_origins",
    "log_format",
    "log_level",
    "max_body_bytes",
    "max_inventory_bytes",
    "agent_heartbeat_ms",
    "agent_lease_ms",
    "agent_down_after_ms",
    "scheduler_lease_ms",
    "tls_cert",
    "tls_key",
    "webhook_ca",
    "hop_overrides",
    "perf_raw_retention_hours",
    "perf_minute_retention_days",
    "perf_hour_retention_days",
    "perf_compact_ms",
    "discovery_interval",
    "console_dir",
];

/// Shortest bootstrap token accepted: it is an admin credential.
pub const MIN_BOOTSTRAP_TOKEN_LEN: usize = 16;

impl Config {
    /// Loads the layers and validates the result.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                anyhow::bail!("config file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file(path));
        }
        // Variables the server does not read (e.g. FERRY_TEST_*) must not fail the start.
        let env = Env::prefixed("FERRY_")
            .filter(|key| KEYS.iter().any(|k| key.as_str().eq_ignore_ascii_case(k)));
        let config: Config = figment
            .merge(env)
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {}", describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let url = &self.database_url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            anyhow::bail!(
                "invalid configuration: database_url (FERRY_DATABASE_URL) must start with \
                 `sqlite:` or `postgres://`, got `{url}`"
            );
        }
        if let Some(token) = &self.bootstrap_token
            && (token.len() < MIN_BOOTSTRAP_TOKEN_LEN || token.chars().any(char::is_whitespace))
        {
            anyhow::bail!(
                "invalid configuration: bootstrap_token (FERRY_BOOTSTRAP_TOKEN) must be at least \
                 {MIN_BOOTSTRAP_TOKEN_LEN} characters without spaces"
            );
        }
        for origin in &self.cors_origins {
            if origin != "*" && http::HeaderValue::from_str(origin).is_err()
                || !(origin == "*"
                    || origin.starts_with("http://")
                    || origin.starts_with("https://"))
            {
                anyhow::bail!(
                    "invalid configuration: cors_origins (FERRY_CORS_ORIGINS) entry `{origin}` \
                     must be `*` or an origin like `https://console.example.com`"
                );
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            anyhow::bail!(
                "invalid configuration: log_level (FERRY_LOG_LEVEL) `{}` is not a valid filter: {e}",
                self.log_level
            );
        }
        if self.max_body_bytes < 1024 {
            anyhow::bail!("invalid configuration: max_body_bytes must be at least 1024");
        }
        if self.max_inventory_bytes < self.max_body_bytes {
            anyhow::bail!(
                "invalid configuration: max_inventory_bytes must be at least max_body_bytes"
            );
        }
        // Below this the heartbeat traffic alone would keep the store busy; above, an agent
        // would need minutes to notice a dead server.
        if !(100..=600_000).contains(&self.agent_heartbeat_ms) {
            anyhow::bail!(
                "invalid configuration: agent_heartbeat_ms (FERRY_AGENT_HEARTBEAT_MS) must be \
                 between 100 and 600000"
            );
        }
        // A lease must survive a lost heartbeat, and an agent must miss several before it is
        // called down.
        if self.agent_lease_ms < 2 * self.agent_heartbeat_ms {
            anyhow::bail!(
                "invalid configuration: agent_lease_ms (FERRY_AGENT_LEASE_MS) must be at least \
                 twice agent_heartbeat_ms"
            );
        }
        if self.agent_down_after_ms < 3 * self.agent_heartbeat_ms {
            anyhow::bail!(
                "invalid configuration: agent_down_after_ms (FERRY_AGENT_DOWN_AFTER_MS) must be \
                 at least three times agent_heartbeat_ms"
            );
        }
        // Renewed every third of its term: shorter would keep the store busy with claims, longer
        // leaves jobs standing for minutes after a replica dies.
        if !(1_500..=300_000).contains(&self.scheduler_lease_ms) {
            anyhow::bail!(
                "invalid configuration: scheduler_lease_ms (FERRY_SCHEDULER_LEASE_MS) must be \
                 between 1500 and 300000"
            );
        }
        // Rollups are recomputed from the raw samples of their hour, so raw data must outlive
        // the hour; each coarser resolution is kept at least as long as the finer.
        if self.perf_raw_retention_hours < 2 {
            anyhow::bail!(
                "invalid configuration: perf_raw_retention_hours (FERRY_PERF_RAW_RETENTION_HOURS) \
                 must be at least 2"
            );
        }
        if self.perf_minute_retention_days * 24 < self.perf_raw_retention_hours
            || self.perf_hour_retention_days < self.perf_minute_retention_days
        {
            anyhow::bail!(
                "invalid configuration: perf retention must not shrink with coarser resolution: \
                 perf_raw_retention_hours <= perf_minute_retention_days * 24 and \
                 perf_minute_retention_days <= perf_hour_retention_days"
            );
        }
        if self.perf_hour_retention_days > 36_500 {
            anyhow::bail!(
                "invalid configuration: perf_hour_retention_days (FERRY_PERF_HOUR_RETENTION_DAYS) \
                 must be at most 36500"
            );
        }
        if !(100..=3_600_000).contains(&self.perf_compact_ms) {
            anyhow::bail!(
                "invalid configuration: perf_compact_ms (FERRY_PERF_COMPACT_MS) must be between \
                 100 and 3600000"
            );
        }
        self.tls()?;
        self.webhook_ca()?;
        Ok(())
    }

    /// How perf data is kept and compacted.
    pub fn perf_settings(&self) -> crate::perf::PerfSettings {
        const HOUR_MS: i64 = 3_600_000;
        crate::perf::PerfSettings {
            retention: crate::perf::Retention {
                raw_ms: self.perf_raw_retention_hours as i64 * HOUR_MS,
                minute_ms: self.perf_minute_retention_days as i64 * 24 * HOUR_MS,
                hour_ms: self.perf_hour_retention_days as i64 * 24 * HOUR_MS,
            },
            compact_every: std::time::Duration::from_millis(self.perf_compact_ms),
        }
    }

    /// Timing of the agent protocol.
    pub fn agent_timing(&self) -> crate::model::AgentTiming {
        crate::model::AgentTiming {
            heartbeat: std::time::Duration::from_millis(self.agent_heartbeat_ms),
            lease: std::time::Duration::from_millis(self.agent_lease_ms),
            down_after: std::time::Duration::from_millis(self.agent_down_after_ms),
        }
    }

    /// How long each claim of the scheduler lease lasts.
    pub fn scheduler_lease(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.scheduler_lease_ms)
    }

    /// The hop table routes are planned with: the built-in rows under `hop_overrides`.
    pub fn hop_table(&self) -> crate::plan::HopTable {
        crate::plan::HopTable::builtin().with_overrides(self.hop_overrides.clone())
    }

    /// The certificate chain and key PEM for the gRPC listener, read and checked; `None` serves
    /// plain text.
    pub fn tls(&self) -> anyhow::Result<Option<(Vec<u8>, Vec<u8>)>> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert, key),
            _ => anyhow::bail!(
                "invalid configuration: tls_cert (FERRY_TLS_CERT) and tls_key (FERRY_TLS_KEY) \
                 must be given together"
            ),
        };
        let read = |path: &Path, key: &str| {
            std::fs::read(path).map_err(|e| {
                anyhow::anyhow!(
                    "invalid configuration: {key} (FERRY_{}) `{}` cannot be read: {e}",
                    key.to_uppercase(),
                    path.display()
                )
            })
        };
        let cert_pem = read(cert, "tls_cert")?;
        let key_pem = read(key, "tls_key")?;
        let certs = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                anyhow::anyhow!(
                    "invalid configuration: tls_cert (FERRY_TLS_CERT) `{}` is not PEM: {e}",
                    cert.display()
                )
            })?;
        if certs.is_empty() {
            anyhow::bail!(
                "invalid configuration: tls_cert (FERRY_TLS_CERT) `{}` holds no certificate",
                cert.display()
            );
        }
        if let Err(e) = PrivateKeyDer::from_pem_slice(&key_pem) {
            anyhow::bail!(
                "invalid configuration: tls_key (FERRY_TLS_KEY) `{}` holds no PEM private key: {e}",
                key.display()
            );
        }
        Ok(Some((cert_pem, key_pem)))
    }

    /// The PEM of `webhook_ca`, read and checked; `None` trusts the public web roots.
    pub fn webhook_ca(&self) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(path) = &self.webhook_ca else {
            return Ok(None);
        };
        let bad = |why: String| {
            anyhow::anyhow!(
                "invalid configuration: webhook_ca (FERRY_WEBHOOK_CA) `{}` {why}",
                path.display()
            )
        };
        let pem = std::fs::read(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
        crate::webhooks::pinned_roots(&pem).map_err(bad)?;
        Ok(Some(pem))
    }
}

/// figment's errors name the key; add the environment variable that sets it.
fn describe(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            if key.is_empty() {
                e.to_string()
            } else {
                format!("{key} (FERRY_{}): {}", key.to_uppercase(), e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A duration written as people write it (`1h`, `30m`, `90s`) or as a number of seconds.
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Seconds(u64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Seconds(seconds) => Ok(Duration::from_secs(seconds)),
            Either::Text(text) if text.trim() == "0" => Ok(Duration::ZERO),
            Either::Text(text) => humantime::parse_duration(text.trim()).map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a duration such as 1h, 30m or 90 (seconds): {e}"
                ))
            }),
        }
    }
}

/// Accepts `["a", "b"]` in TOML and `a,b` in an environment variable.
fn list_or_comma_separated<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(list) => list,
        Either::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    })
}

#[cfg(test)]
// figment::Jail fixes the closure's error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        figment::Jail::expect_with(|_| {
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(c, Config::default());
            Ok(())
        });
    }

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "ferry.toml",
                "http_addr = \"127.0.0.1:9000\"\ngrpc_addr = \"127.0.0.1:9001\"\ncors_origins = [\"https://a.example\"]\n",
            )?;
            jail.set_env("FERRY_GRPC_ADDR", "127.0.0.1:9002");
            jail.set_env("FERRY_CORS_ORIGINS", "https://b.example, https://c.example");
            jail.set_env("FERRY_TEST_POSTGRES_URL", "ignored");
            let overrides = Overrides {
                database_url: Some("postgres://localhost/ferry".into()),
                ..Default::default()
            };
            let c = Config::load(Some(Path::new("ferry.toml")), &overrides).unwrap();
            assert_eq!(c.http_addr.port(), 9000, "file beats default");
            assert_eq!(c.grpc_addr.port(), 9002, "env beats file");
            assert_eq!(
                c.database_url, "postgres://localhost/ferry",
                "flag beats all"
            );
            assert_eq!(
                c.cors_origins,
                vec!["https://b.example", "https://c.example"]
            );
            Ok(())
        });
    }

    #[test]
    fn bad_settings_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FERRY_HTTP_ADDR", "not-an-address");
            let err = Config::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("http_addr"), "{err}");
            assert!(err.contains("FERRY_HTTP_ADDR"), "{err}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("FERRY_DATABASE_URL", "mysql://x");
            let err = Config::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("FERRY_DATABASE_URL"), "{err}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("FERRY_BOOTSTRAP_TOKEN", "short");
            let err = Config::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("FERRY_BOOTSTRAP_TOKEN"), "{err}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("FERRY_LOG_FORMAT", "xml");
            let err = Config::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("log_format"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn tls_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        let mut c = Config {
            tls_cert: Some(junk.clone()),
            ..Config::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("FERRY_TLS_KEY"), "{err}");
        c.tls_key = Some(dir.path().join("missing.pem"));
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("tls_key") && err.contains("cannot be read"),
            "{err}"
        );
        c.tls_cert = Some(dir.path().join("missing.pem"));
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("tls_cert") && err.contains("cannot be read"),
            "{err}"
        );
        c.tls_cert = Some(junk.clone());
        c.tls_key = Some(junk);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("FERRY_TLS_CERT"), "{err}");
    }

    #[test]
    fn the_webhook_ca_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config {
            webhook_ca: Some(dir.path().join("missing.pem")),
            ..Config::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("FERRY_WEBHOOK_CA") && err.contains("cannot be read"),
            "{err}"
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        c.webhook_ca = Some(junk);
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("webhook_ca") && err.contains("no PEM certificate"),
            "{err}"
        );
        let ca = rcgen::CertifiedIssuer::self_signed(
            rcgen::CertificateParams::new(Vec::<String>::new()).unwrap(),
            rcgen::KeyPair::generate().unwrap(),
        )
        .unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.pem()).unwrap();
        c.webhook_ca = Some(good);
        c.validate().unwrap();
        assert!(c.webhook_ca().unwrap().is_some());
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let err = Config::load(
            Some(Path::new("/nonexistent/ferry.toml")),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/ferry.toml"), "{err}");
    }
}
