//! Every metric that a dashboard in `k8s/dashboards/` or an alert in `k8s/alerts/` names
//! exists on a running `parlor serve`, so no panel or alert points at nothing; and the
//! exposition follows Prometheus' conventions (`promtool check metrics`).
#![allow(clippy::unwrap_used)]

#[path = "common/serve.rs"]
mod serve;

use std::collections::BTreeSet;
use std::path::Path;

/// The metric names a query text mentions: Parlor's own and the process's.
fn names_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("parlor_") || w.starts_with("process_"))
        .map(str::to_owned)
        .collect()
}

/// The queries of the dashboards and the alert rules, with the file each came from.
fn referenced() -> Vec<(String, BTreeSet<String>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s");
    let mut out = Vec::new();
    for dir in ["dashboards", "alerts"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let exprs: String = if path.extension().is_some_and(|e| e == "json") {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                v["panels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|p| p["targets"].as_array().unwrap().iter())
                    .map(|t| t["expr"].as_str().unwrap().to_owned() + "\n")
                    .collect()
            } else {
                // Rule files: the `expr:` lines and the series of the rule tests.
                text.lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .map(|l| l.to_owned() + "\n")
                    .collect()
            };
            out.push((path.display().to_string(), names_in(&exprs)));
        }
    }
    out
}

#[tokio::test]
async fn every_metric_a_dashboard_or_alert_names_is_served() {
    let refs = referenced();
    assert!(
        refs.iter().filter(|(f, _)| f.ends_with(".json")).count() >= 3,
        "the SFU, signaling and chat dashboards: {refs:?}"
    );
    assert!(refs.iter().all(|(_, names)| !names.is_empty()));

    let s = serve::serve();
    let body = reqwest::get(format!("{}/metrics", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let served: BTreeSet<String> = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect();
    let mut missing = Vec::new();
    for (file, names) in &refs {
        for n in names.difference(&served) {
            missing.push(format!("{n} (in {file})"));
        }
    }
    assert!(missing.is_empty(), "named but not served: {missing:?}");

    // Counters end in _total; every family has help.
    let mut families = 0;
    for l in body.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            families += 1;
            let (name, kind) = rest.split_once(' ').unwrap();
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name} without _total");
            }
            assert!(
                body.contains(&format!("# HELP {name} ")),
                "{name} has no help"
            );
        }
    }
    assert!(families >= 35, "{families} metric families");

    // Prometheus' own linter, where it is installed (the test command installs it).
    if let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("promtool is not installed: the lint part of this test did not run");
    }
}
