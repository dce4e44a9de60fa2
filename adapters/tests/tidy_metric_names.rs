//! Metric names are declared once, in `adapters::metrics`; `infra/serverless.yml` repeats them in
//! its alarms and dashboard. This test fails when the two disagree: an alarm on a name no code
//! writes would never fire, and a metric missing from the dashboard is one nobody looks at.

use std::collections::BTreeSet;

use adapters::metrics::ALL;
use serde_norway::Value;

const SERVERLESS_YML: &str = include_str!("../../infra/serverless.yml");
const NAMESPACE: &str = "${param:metricsNamespace}";

fn declared() -> BTreeSet<&'static str> {
    ALL.iter().map(|metric| metric.name).collect()
}

/// Every `MetricName` next to `Namespace: ${param:metricsNamespace}`, anywhere in the YAML.
fn alarmed(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Mapping(map) => {
            let namespace = map.get("Namespace").and_then(Value::as_str);
            if let (Some(NAMESPACE), Some(name)) =
                (namespace, map.get("MetricName").and_then(Value::as_str))
            {
                found.insert(name.to_string());
            }
            map.values().for_each(|v| alarmed(v, found));
        }
        Value::Sequence(items) => items.iter().for_each(|v| alarmed(v, found)),
        Value::Tagged(tagged) => alarmed(&tagged.value, found),
        _ => {}
    }
}

/// The names the dashboard body shows: `["<namespace>", "Name"` rows and SEARCH expressions.
fn on_dashboard() -> BTreeSet<String> {
    let row = format!("[\"{NAMESPACE}\", \"");
    let search = "MetricName=\\\"";
    let mut found = BTreeSet::new();
    for marker in [row.as_str(), search] {
        for (at, _) in SERVERLESS_YML.match_indices(marker) {
            let rest = &SERVERLESS_YML[at + marker.len()..];
            let name: String = rest
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            found.insert(name);
        }
    }
    found
}

#[test]
fn every_alarm_on_the_service_namespace_names_a_declared_metric() {
    let mut yaml: Value = serde_norway::from_str(SERVERLESS_YML).unwrap();
    yaml.apply_merge().unwrap();
    let mut found = BTreeSet::new();
    alarmed(&yaml, &mut found);

    assert!(found.len() >= 4, "the alarms were found: {found:?}");
    let unknown: Vec<_> = found
        .iter()
        .filter(|n| !declared().contains(n.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "alarms on undeclared metrics: {unknown:?}"
    );
}

#[test]
fn the_dashboard_shows_every_declared_metric_and_no_other() {
    let shown = on_dashboard();

    let declared: BTreeSet<String> = declared().into_iter().map(String::from).collect();
    assert_eq!(shown, declared);
}

#[test]
fn every_name_in_the_name_module_is_listed_in_all() {
    let source = include_str!("../src/metrics.rs");
    let module = source
        .split_once("pub mod name {")
        .and_then(|(_, rest)| rest.split_once("\n}"))
        .map(|(module, _)| module)
        .expect("adapters/src/metrics.rs has `pub mod name`");
    let named: BTreeSet<&str> = module
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter_map(|l| l.split('"').nth(1))
        .collect();

    assert!(named.len() >= 10, "the names were found: {named:?}");
    assert_eq!(named, declared());
}
