//! `GET /metrics`: the metrics the handlers and the delivery workers record (`adapters::metrics`),
//! in Prometheus text format, under the same names the Lambdas send CloudWatch. Every metric is
//! listed from the start, with its help and a zero value, so a scrape (or the inspector) sees
//! the whole set before any traffic.

use std::sync::OnceLock;

use adapters::metrics::{ALL, Kind};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The Prometheus text exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's recorder: installed by the first gateway started, shared by any later one (a
/// process has one global recorder). `None` when another recorder was installed first.
fn recorder() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => {
                adapters::metrics::describe();
                declare_every_metric();
                Some(handle)
            }
            Err(e) => {
                tracing::warn!(error = %e, "GET /metrics is off: another metrics recorder is installed");
                None
            }
        })
        .as_ref()
}

/// Registers every metric without a label, at zero: a series with labels (`Messages{Action=...}`)
/// joins it when first recorded, and sums over the metric stay right.
fn declare_every_metric() {
    for metric in ALL {
        match metric.kind {
            Kind::Counter => metrics::counter!(metric.name).increment(0),
            Kind::Histogram => drop(metrics::histogram!(metric.name)),
        }
    }
}

/// Installs the recorder, so metrics are counted from the first event on.
pub(crate) fn install() {
    recorder();
}

pub(crate) async fn render() -> Response {
    let Some(handle) = recorder() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "metrics are off\n").into_response();
    };
    // No background task drains the histograms here: the scrape does.
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], handle.render()).into_response()
}
