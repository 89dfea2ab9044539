//! Prometheus metrics of the server, rendered in the text exposition format at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `http` or `grpc`.
    pub transport: &'static str,
    pub method: String,
    /// The route template (`/v1/clusters/{id}`) or gRPC method, never the raw path: bounded
    /// cardinality.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub transport: &'static str,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// `RESULT_VERDICT_APPLIED`, `..._DUPLICATE`, `..._STALE` or `..._REFUSED`.
    pub verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DutyLabels {
    /// `reap`, `perf_compaction`, `perf_retention` or `discovery_schedule`.
    pub duty: &'static str,
}

pub struct Metrics {
    registry: Registry,
    /// Copied from the service's own counts at each scrape; the lock keeps two scrapes from
    /// adding the same difference twice.
    periods_done: std::sync::Mutex<Family<DutyLabels, Counter>>,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    agent_results: Family<VerdictLabels, Counter>,
    /// Agent sessions open on this server.
    pub agent_sessions: Gauge,
    /// Perf samples from agents that were stored.
    pub agent_perf_samples: Counter,
    /// Perf batches from agents refused as malformed.
    pub agent_perf_batches_refused: Counter,
    /// Inventory reports received from agents.
    pub agent_inventory_reports: Counter,
    /// Inventory reports refused: malformed, oversized, invalid, or of a cluster the agent is
    /// not enrolled for.
    pub agent_inventory_reports_refused: Counter,
    /// Progress reports received from agents on their own (not inside a result).
    pub agent_progress_reports: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferry");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "API requests answered", requests.clone());
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        registry.register(
            "request_duration_seconds",
            "Time to answer API requests",
            durations.clone(),
        );
        let agent_results = Family::<VerdictLabels, Counter>::default();
        registry.register(
            "agent_results",
            "Task results reported by agents, by what became of them",
            agent_results.clone(),
        );
        let agent_sessions = Gauge::default();
        registry.register(
            "agent_sessions",
            "Agent sessions open on this server",
            agent_sessions.clone(),
        );
        let agent_perf_samples = Counter::default();
        registry.register(
            "agent_perf_samples",
            "Perf samples from agents that were stored",
            agent_perf_samples.clone(),
        );
        let agent_perf_batches_refused = Counter::default();
        registry.register(
            "agent_perf_batches_refused",
            "Perf batches from agents refused as malformed (the reason is in the log)",
            agent_perf_batches_refused.clone(),
        );
        let agent_inventory_reports = Counter::default();
        registry.register(
            "agent_inventory_reports",
            "Inventory reports received from agents",
            agent_inventory_reports.clone(),
        );
        let agent_inventory_reports_refused = Counter::default();
        registry.register(
            "agent_inventory_reports_refused",
            "Inventory reports from agents refused whole: malformed, oversized, invalid, or of \
             another cluster",
            agent_inventory_reports_refused.clone(),
        );
        let agent_progress_reports = Counter::default();
        registry.register(
            "agent_progress_reports",
            "Progress reports received from agents on their own, not inside a result",
            agent_progress_reports.clone(),
        );
        let periods_done = Family::<DutyLabels, Counter>::default();
        registry.register(
            "periods_done",
            "Periods of timed work this replica claimed and did; replicas sharing a database \
             split the periods between them",
            periods_done.clone(),
        );
        Self {
            registry,
            periods_done: std::sync::Mutex::new(periods_done),
            requests,
            durations,
            agent_results,
            agent_sessions,
            agent_perf_samples,
            agent_perf_batches_refused,
            agent_inventory_reports,
            agent_inventory_reports_refused,
            agent_progress_reports,
        }
    }

    /// Brings `ferry_periods_done_total` up to the service's counts.
    pub fn record_periods(&self, done: &[(ferry_service::periodic::Duty, u64)]) {
        let family = self
            .periods_done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for &(duty, count) in done {
            let counter = family.get_or_create(&DutyLabels {
                duty: duty.as_str(),
            });
            counter.inc_by(count.saturating_sub(counter.get()));
        }
    }

    pub fn agent_result(&self, verdict: &'static str) {
        self.agent_results
            .get_or_create(&VerdictLabels { verdict })
            .inc();
    }

    pub fn observe(&self, labels: RequestLabels, seconds: f64) {
        self.durations
            .get_or_create(&RouteLabels {
                transport: labels.transport,
                route: labels.route.clone(),
            })
            .observe(seconds);
        self.requests.get_or_create(&labels).inc();
    }

    /// Records one gRPC call, labelled like REST calls so both series read alike.
    pub fn observe_grpc(&self, route: &str, code: tonic::Code, started: std::time::Instant) {
        self.observe(
            RequestLabels {
                transport: "grpc",
                // gRPC is always an HTTP/2 POST.
                method: "POST".into(),
                route: route.into(),
                status: code as u16,
            },
            started.elapsed().as_secs_f64(),
        );
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
