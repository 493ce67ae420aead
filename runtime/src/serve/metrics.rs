//! The server's metrics, in Prometheus' text format at `/metrics`: requests, errors and
//! latency per model, version and protocol, model loads, and the size of every predictor
//! pool (read at scrape time).

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    errors: IntCounterVec,
    latency: HistogramVec,
    loads: IntCounterVec,
    load_seconds: HistogramVec,
    pool_instances: IntGaugeVec,
    pool_busy: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let labels = &["model", "version", "protocol"];
        let requests = IntCounterVec::new(
            Opts::new(
                "sluice_requests_total",
                "Inference requests answered, by status code",
            ),
            &["model", "version", "protocol", "code"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "sluice_request_errors_total",
                "Inference requests answered with an error",
            ),
            labels,
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "sluice_request_duration_seconds",
                "Time from a request's arrival to its answer",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ]),
            labels,
        )
        .expect("valid metric");
        let loads = IntCounterVec::new(
            Opts::new(
                "sluice_model_loads_total",
                "Model versions loaded (and reloaded after scaling to zero)",
            ),
            &["model", "version"],
        )
        .expect("valid metric");
        let load_seconds = HistogramVec::new(
            HistogramOpts::new(
                "sluice_model_load_duration_seconds",
                "Time to load and warm a model version",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["model", "version"],
        )
        .expect("valid metric");
        let pool_instances = IntGaugeVec::new(
            Opts::new(
                "sluice_pool_instances",
                "Predictor instances of a model version, idle or busy",
            ),
            &["model", "version"],
        )
        .expect("valid metric");
        let pool_busy = IntGaugeVec::new(
            Opts::new(
                "sluice_pool_busy_instances",
                "Predictor instances of a model version running a request",
            ),
            &["model", "version"],
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(latency.clone()),
            Box::new(loads.clone()),
            Box::new(load_seconds.clone()),
            Box::new(pool_instances.clone()),
            Box::new(pool_busy.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            requests,
            errors,
            latency,
            loads,
            load_seconds,
            pool_instances,
            pool_busy,
        }
    }

    /// Records one answered inference request.
    pub fn request(&self, model: &str, version: &str, protocol: &str, code: u16, took: Duration) {
        let code = code.to_string();
        self.requests
            .with_label_values(&[model, version, protocol, &code])
            .inc();
        if !code.starts_with('2') {
            self.errors
                .with_label_values(&[model, version, protocol])
                .inc();
        }
        self.latency
            .with_label_values(&[model, version, protocol])
            .observe(took.as_secs_f64());
    }

    pub fn loaded(&self, model: &str, version: u64, took: Duration) {
        let version = version.to_string();
        self.loads.with_label_values(&[model, &version]).inc();
        self.load_seconds
            .with_label_values(&[model, &version])
            .observe(took.as_secs_f64());
    }

    /// The text exposition, with pool sizes as of now.
    pub fn render(&self, pools: &[(String, u64, usize, usize)]) -> String {
        self.pool_instances.reset();
        self.pool_busy.reset();
        for (model, version, live, busy) in pools {
            let version = version.to_string();
            self.pool_instances
                .with_label_values(&[model, &version])
                .set(*live as i64);
            self.pool_busy
                .with_label_values(&[model, &version])
                .set(*busy as i64);
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding writes to a vector");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.request("cancer", "2", "v2", 200, Duration::from_micros(300));
        m.request("cancer", "2", "v2", 400, Duration::from_micros(100));
        m.loaded("cancer", 2, Duration::from_millis(3));
        let text = m.render(&[("cancer".into(), 2, 3, 1)]);
        assert!(text.contains("sluice_requests_total{code=\"200\",model=\"cancer\",protocol=\"v2\",version=\"2\"} 1"), "{text}");
        assert!(
            text.contains(
                "sluice_request_errors_total{model=\"cancer\",protocol=\"v2\",version=\"2\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("sluice_pool_instances{model=\"cancer\",version=\"2\"} 3"),
            "{text}"
        );
        assert!(text.contains("sluice_request_duration_seconds_bucket{model=\"cancer\",protocol=\"v2\",version=\"2\",le=\"0.0005\"} 2"), "{text}");
        assert!(
            text.contains("# TYPE sluice_model_loads_total counter"),
            "{text}"
        );
    }
}
