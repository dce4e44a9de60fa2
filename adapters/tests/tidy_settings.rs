//! `infra/serverless.yml` sets the Lambdas' environment; `adapters::settings` declares what each
//! variable means, its default and its bounds. This test fails when the two disagree: a variable
//! the stack sets that nothing declares (a typo, or a setting the code no longer reads), or a
//! number whose default deploy parameter is outside the declared bounds.

use std::collections::BTreeMap;

use adapters::settings::{ALL, Setting, UsedBy, Value};
use serde_norway::Value as Yaml;

const SERVERLESS_YML: &str = include_str!("../../infra/serverless.yml");

fn serverless() -> Yaml {
    serde_norway::from_str(SERVERLESS_YML).expect("infra/serverless.yml is YAML")
}

/// Every variable the stack sets: where (provider or a function), and its value as written.
fn environment(yaml: &Yaml) -> Vec<(String, String, Yaml)> {
    let mut found = Vec::new();
    let mut add = |place: String, env: Option<&Yaml>| {
        for (name, value) in env.and_then(Yaml::as_mapping).into_iter().flatten() {
            let name = name
                .as_str()
                .expect("variable names are strings")
                .to_string();
            found.push((place.clone(), name, value.clone()));
        }
    };
    add("provider".into(), yaml["provider"].get("environment"));
    for (function, body) in yaml["functions"].as_mapping().expect("functions") {
        let function = function.as_str().expect("function names are strings");
        add(format!("function {function}"), body.get("environment"));
    }
    found
}

/// The stack's default for `${param:NAME}`, or the literal itself.
fn resolved(yaml: &Yaml, value: &Yaml) -> Option<String> {
    let text = match value {
        Yaml::String(text) => text.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        _ => return None,
    };
    match text
        .strip_prefix("${param:")
        .and_then(|rest| rest.strip_suffix('}'))
    {
        Some(param) => {
            let default = &yaml["params"]["default"][param];
            resolved(yaml, default)
        }
        None if text.contains("${") => None,
        None => Some(text),
    }
}

fn declared(name: &str) -> Option<&'static Setting> {
    ALL.iter().find(|setting| setting.name == name)
}

#[test]
fn tidy_every_variable_the_stack_sets_is_a_declared_setting() {
    let yaml = serverless();
    let env = environment(&yaml);
    assert!(env.len() > 10, "the environment was read: {env:?}");
    let undeclared: Vec<String> = env
        .iter()
        .filter(|(_, name, _)| declared(name).is_none())
        .map(|(place, name, _)| format!("{place}: {name}"))
        .collect();
    assert!(
        undeclared.is_empty(),
        "set by serverless.yml but not declared in adapters/src/settings.rs: {undeclared:?}"
    );
}

#[test]
fn tidy_the_stacks_default_values_are_within_the_declared_bounds() {
    let yaml = serverless();
    let mut checked = BTreeMap::new();
    for (place, name, value) in environment(&yaml) {
        let (Some(setting), Some(value)) = (declared(&name), resolved(&yaml, &value)) else {
            continue;
        };
        if matches!(
            setting.value,
            Value::Number { .. } | Value::Switch { .. } | Value::Choice { .. }
        ) {
            let result = setting.read(&|_| Some(value.clone()), false);
            assert!(result.is_ok(), "{place}: {name} = {value:?}: {result:?}");
            checked.insert(name, value);
        }
    }
    assert!(
        checked.contains_key("FANOUT_CONCURRENCY") && checked.contains_key("RATE_LIMIT_BURST"),
        "the numbers were checked: {checked:?}"
    );
}

#[test]
fn tidy_a_deploy_parameter_defaults_to_the_settings_own_default() {
    // Otherwise the documented default (docs/configuration.md, "Service settings", generated from
    // the declarations) is not what a deploy gets.
    let yaml = serverless();
    let mut compared = Vec::new();
    for (place, name, value) in environment(&yaml) {
        let (Some(setting), Some(value)) = (declared(&name), resolved(&yaml, &value)) else {
            continue;
        };
        if let Value::Number { default, .. } = setting.value {
            // Deliberate departures, each with its reason in serverless.yml.
            if ["RATE_LIMIT_PER_SECOND", "RATE_LIMIT_BURST"].contains(&name.as_str()) {
                continue;
            }
            assert_eq!(value, default.to_string(), "{place}: {name}");
            compared.push(name);
        }
    }
    assert!(
        compared.iter().any(|name| name == "INLINE_RECIPIENTS"),
        "{compared:?}"
    );
}

#[test]
fn tidy_the_local_gateway_reads_every_setting_but_the_deployments_own() {
    // What only a deployment has: its endpoint, its namespace, its EventBridge bus (the local
    // gateway has --events-webhook instead), the runtime's own variables.
    let lambdas_only: Vec<&str> = ALL
        .iter()
        .filter(|s| s.used_by == UsedBy::Lambdas)
        .map(|s| s.name)
        .collect();
    assert_eq!(
        lambdas_only,
        [
            "MANAGEMENT_ENDPOINT",
            "API_ID",
            "STAGE",
            "AWS_URL_SUFFIX",
            "REQUIRE_PRINCIPAL",
            "FUNCTION_TIMEOUT_SECONDS",
            "METRICS_NAMESPACE",
            "EVENT_BUS_NAME",
            "EVENT_SOURCE",
            "RUST_LOG",
            "SSL_CERT_FILE"
        ],
        "a new setting the local gateway cannot take must say why here"
    );
}

#[test]
fn tidy_the_configuration_reference_lists_every_setting_as_declared() {
    // `UPDATE_GENERATED=1 cargo test -p adapters tidy_the_configuration` rewrites the table.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
    let doc = std::fs::read_to_string(path).unwrap();
    const BEGIN: &str = "<!-- settings: generated from adapters/src/settings.rs -->\n";
    const END: &str = "<!-- settings: end -->\n";
    let start = doc.find(BEGIN).expect("the begin marker") + BEGIN.len();
    let end = doc[start..].find(END).map(|i| start + i);
    let table = adapters::settings::markdown_table();
    let current = end.map(|end| &doc[start..end]);
    if current != Some(table.as_str()) && std::env::var_os("UPDATE_GENERATED").is_some() {
        let rest = end.map_or(&doc[start..], |end| &doc[end + END.len()..]);
        std::fs::write(path, format!("{}{table}{END}{rest}", &doc[..start])).unwrap();
        return;
    }
    assert_eq!(
        current,
        Some(table.as_str()),
        "docs/configuration.md's settings table is not the declarations': run UPDATE_GENERATED=1 cargo test -p adapters tidy_the_configuration"
    );
}
