//! Counters read from Prometheus text: the API server's
//! `apiserver_request_total` (what the controllers cost it) and the host's
//! `controller_runtime_reconcile_total` (how often it reconciled).

use std::collections::BTreeMap;

use anyhow::{Context, Result};

/// Requests the API server served, by (verb, resource, subresource).
#[derive(Debug, Clone, Default)]
pub struct Requests(BTreeMap<(String, String, String), f64>);

/// The kinds the benchmark's controllers touch: the primary, its Pods, and
/// Events. Requests for anything else are the API server's own (leases,
/// its identity) and not counted.
const RESOURCES: [&str; 3] = ["ats", "pods", "events"];

impl Requests {
    /// Reads the API server's `/metrics` through `client` (an admin).
    pub async fn scrape(client: &kube::Client) -> Result<Requests> {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .context("building the /metrics request")?;
        let text = client
            .request_text(request)
            .await
            .context("reading the API server's /metrics")?;
        Ok(Requests::parse(&text))
    }

    /// The `apiserver_request_total` samples of a Prometheus text page.
    pub fn parse(text: &str) -> Requests {
        let mut counts = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let label = |name: &str| label(labels, name).unwrap_or_default();
            *counts
                .entry((label("verb"), label("resource"), label("subresource")))
                .or_insert(0.0) += value;
        }
        Requests(counts)
    }

    /// What was served between `before` and `self`, for the benchmark's
    /// kinds, minus the creates of the primaries (the load generator's).
    pub fn since(&self, before: &Requests) -> Cost {
        let mut cost = Cost::default();
        for (key, after) in &self.0 {
            let (verb, resource, subresource) = key;
            if !RESOURCES.contains(&resource.as_str()) {
                continue;
            }
            let delta = after - before.0.get(key).copied().unwrap_or(0.0);
            if delta <= 0.0 {
                continue;
            }
            if verb == "POST" && resource == "ats" && subresource.is_empty() {
                continue;
            }
            match verb.as_str() {
                "GET" | "LIST" | "WATCH" => cost.reads += delta,
                _ => cost.writes += delta,
            }
            if verb != "GET" && verb != "LIST" && verb != "WATCH" && subresource == "status" {
                cost.status_writes += delta;
            }
        }
        cost
    }
}

/// Requests a controller made in a window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    /// GET, LIST and WATCH.
    pub reads: f64,
    /// Every other verb (APPLY, PATCH, POST, PUT, DELETE).
    pub writes: f64,
    /// Writes to the status subresource (part of `writes`).
    pub status_writes: f64,
}

impl Cost {
    /// Every request.
    pub fn total(&self) -> f64 {
        self.reads + self.writes
    }
}

/// The sum of `controller_runtime_reconcile_total` over results.
pub fn reconciles(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("controller_runtime_reconcile_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum()
}

fn label(labels: &str, name: &str) -> Option<String> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let end = labels[start..].find('"')? + start;
    Some(labels[start..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_controllers_requests_and_not_the_load_generators() {
        let before = Requests::parse(
            "apiserver_request_total{code=\"201\",resource=\"ats\",subresource=\"\",verb=\"POST\"} 1\n",
        );
        let after = Requests::parse(concat!(
            "# HELP apiserver_request_total x\n",
            "apiserver_request_total{code=\"201\",resource=\"ats\",subresource=\"\",verb=\"POST\"} 11\n",
            "apiserver_request_total{code=\"201\",resource=\"pods\",subresource=\"\",verb=\"APPLY\"} 10\n",
            "apiserver_request_total{code=\"200\",resource=\"ats\",subresource=\"status\",verb=\"APPLY\"} 10\n",
            "apiserver_request_total{code=\"200\",resource=\"leases\",subresource=\"\",verb=\"PUT\"} 7\n",
            "apiserver_request_total{code=\"200\",resource=\"pods\",subresource=\"\",verb=\"GET\"} 3\n",
        ));
        let cost = after.since(&before);
        assert_eq!(cost.writes, 20.0);
        assert_eq!(cost.status_writes, 10.0);
        assert_eq!(cost.reads, 3.0);
    }

    #[test]
    fn sums_reconciles_over_results() {
        let text = "controller_runtime_reconcile_total{controller=\"cnat\",result=\"success\"} 4\ncontroller_runtime_reconcile_total{controller=\"cnat\",result=\"error\"} 1\n";
        assert_eq!(reconciles(text), 5.0);
    }
}
