//! Prometheus metrics (README, Metrics): one registry per server, rendered in the Prometheus
//! text format by `GET /metrics`.
//!
//! Label values come from bounded sets only: route templates (never paths), methods, statuses,
//! ring names (rings are created by admins), algorithms, backends, operations and key states.
//! Kids, client names and anything a caller sends are never labels.

use std::time::Duration;

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::domain::{BackendKind, KeyRecord, RingRecord};

/// Latency buckets, in seconds: 100 µs to 10 s.
const SECONDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// Records per audit batch (the writer commits at most 512).
const BATCH_SIZES: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    rate_limited: IntCounterVec,
    signatures: HistogramVec,
    verifications: HistogramVec,
    backend_calls: HistogramVec,
    backend_errors: IntCounterVec,
    pub audit_batch_records: Histogram,
    pub audit_commit_seconds: Histogram,
    pub audit_queue: IntGauge,
    pub audit_written: IntCounter,
    pub audit_refused: IntCounter,
    /// Tokens and subjects this replica holds as revoked.
    pub revocations: IntGauge,
    rotations: IntCounterVec,
    keys: IntGaugeVec,
    next_rotation: GaugeVec,
}

/// What a signature or a verification is labelled with.
pub struct RingLabels<'a> {
    pub ring: &'a str,
    pub algorithm: &'static str,
    pub backend: &'static str,
}

impl<'a> RingLabels<'a> {
    pub fn of(ring: &'a RingRecord) -> RingLabels<'a> {
        RingLabels {
            ring: &ring.name,
            algorithm: ring.algorithm.as_str(),
            backend: ring.backend.as_str(),
        }
    }
}

fn registered<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, m: M) -> M {
    registry
        .register(Box::new(m.clone()))
        .expect("each metric is registered once, under its own name");
    m
}

fn counters(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric"),
    )
}

fn histograms(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    registered(
        registry,
        HistogramVec::new(opts, labels).expect("a valid metric"),
    )
}

impl Default for Metrics {
    fn default() -> Metrics {
        let r = Registry::new();
        let build = registered(
            &r,
            IntGaugeVec::new(
                Opts::new("signet_build_info", "Always 1; the version of this server."),
                &["version"],
            )
            .expect("a valid metric"),
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            registered(&r, Histogram::with_opts(opts).expect("a valid metric"))
        };
        Metrics {
            http_requests: counters(
                &r,
                "signet_http_requests_total",
                "HTTP requests answered, by route template, method and status.",
                &["route", "method", "status"],
            ),
            rate_limited: counters(
                &r,
                "signet_rate_limited_total",
                "Requests refused with 429, by caller: a client, or anonymous (per source address).",
                &["caller"],
            ),
            signatures: histograms(
                &r,
                "signet_sign_seconds",
                "Time to sign and durably audit a token or signing input that was returned.",
                &SECONDS,
                &["ring", "algorithm", "backend"],
            ),
            verifications: histograms(
                &r,
                "signet_verify_seconds",
                "Time to verify a token signed by a published key (valid or not).",
                &SECONDS,
                &["ring", "algorithm", "backend"],
            ),
            backend_calls: histograms(
                &r,
                "signet_backend_call_seconds",
                "Key backend calls, by backend and operation.",
                &SECONDS,
                &["backend", "operation"],
            ),
            backend_errors: counters(
                &r,
                "signet_backend_errors_total",
                "Key backend calls that failed, by backend and operation.",
                &["backend", "operation"],
            ),
            audit_batch_records: histogram(
                "signet_audit_batch_records",
                "Records per audit batch committed.",
                &BATCH_SIZES,
            ),
            audit_commit_seconds: histogram(
                "signet_audit_commit_seconds",
                "Time to append one audit batch to the chain and commit it.",
                &SECONDS,
            ),
            audit_queue: registered(
                &r,
                IntGauge::new(
                    "signet_audit_queue_records",
                    "Audit records waiting for the writer.",
                )
                .expect("a valid metric"),
            ),
            revocations: registered(
                &r,
                IntGauge::new(
                    "signet_revocations",
                    "Tokens and subjects this replica holds as revoked.",
                )
                .expect("a valid metric"),
            ),
            audit_written: registered(
                &r,
                IntCounter::new(
                    "signet_audit_records_written_total",
                    "Audit records committed.",
                )
                .expect("a valid metric"),
            ),
            audit_refused: registered(
                &r,
                IntCounter::new(
                    "signet_audit_records_refused_total",
                    "Audit records that could not be committed (their requests failed closed).",
                )
                .expect("a valid metric"),
            ),
            rotations: counters(
                &r,
                "signet_rotations_total",
                "Rotations started by an admin, a revocation or the schedule, by ring and outcome (done or failed).",
                &["ring", "outcome"],
            ),
            keys: registered(
                &r,
                IntGaugeVec::new(
                    Opts::new("signet_keys", "Keys not destroyed, by ring and state."),
                    &["ring", "state"],
                )
                .expect("a valid metric"),
            ),
            next_rotation: registered(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "signet_next_rotation_seconds",
                        "Seconds until the ring's next scheduled rotation (negative: overdue); absent while paused or under way.",
                    ),
                    &["ring"],
                )
                .expect("a valid metric"),
            ),
            registry: r,
        }
    }
}

impl Metrics {
    pub fn http_request(&self, route: &str, method: &str, status: u16) {
        self.http_requests
            .with_label_values(&[route, method, status_text(status)])
            .inc();
    }

    pub fn rate_limited(&self, client: bool) {
        self.rate_limited
            .with_label_values(&[if client { "client" } else { "anonymous" }])
            .inc();
    }

    pub fn signed(&self, labels: &RingLabels<'_>, took: Duration) {
        self.signatures
            .with_label_values(&[labels.ring, labels.algorithm, labels.backend])
            .observe(took.as_secs_f64());
    }

    pub fn verified(&self, labels: &RingLabels<'_>, took: Duration) {
        self.verifications
            .with_label_values(&[labels.ring, labels.algorithm, labels.backend])
            .observe(took.as_secs_f64());
    }

    pub fn backend_call(&self, backend: BackendKind, operation: &str, took: Duration, ok: bool) {
        let labels = [backend.as_str(), operation];
        self.backend_calls
            .with_label_values(&labels)
            .observe(took.as_secs_f64());
        if !ok {
            self.backend_errors.with_label_values(&labels).inc();
        }
    }

    pub fn rotation(&self, ring: &str, done: bool) {
        self.rotations
            .with_label_values(&[ring, if done { "done" } else { "failed" }])
            .inc();
    }

    /// The text to answer a scrape with, the key gauges set from `keys` (every key not
    /// destroyed) and the schedule gauges from `next_rotations` (ring, seconds).
    pub fn render(&self, keys: &[KeyRecord], next_rotations: &[(String, f64)]) -> String {
        self.keys.reset();
        for key in keys {
            self.keys
                .with_label_values(&[&*key.ring, key.state.as_str()])
                .inc();
        }
        self.next_rotation.reset();
        for (ring, seconds) in next_rotations {
            self.next_rotation.with_label_values(&[ring]).set(*seconds);
        }
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut text)
            .expect("the text format encodes into memory");
        String::from_utf8(text).expect("the text format is UTF-8")
    }
}

/// The status as a label without allocating for the common ones.
fn status_text(status: u16) -> &'static str {
    const KNOWN: [(u16, &str); 16] = [
        (200, "200"),
        (201, "201"),
        (204, "204"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (409, "409"),
        (413, "413"),
        (415, "415"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (503, "503"),
    ];
    KNOWN
        .iter()
        .find(|(code, _)| *code == status)
        .map_or("other", |(_, text)| text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_counted_shows_in_the_text_format_with_its_labels() {
        let metrics = Metrics::default();
        metrics.http_request("/v1/rings/{ring}/sign", "POST", 201);
        metrics.http_request("/v1/rings/{ring}/sign", "POST", 201);
        metrics.http_request("/v1/rings/{ring}/sign", "POST", 599);
        let text = metrics.render(&[], &[]);
        assert!(text.contains(
            "signet_http_requests_total{method=\"POST\",route=\"/v1/rings/{ring}/sign\",status=\"201\"} 2\n"
        ), "{text}");
        assert!(text.contains("status=\"other\"} 1\n"), "{text}");
        assert!(text.contains("signet_build_info{version=\""), "{text}");
    }
}
