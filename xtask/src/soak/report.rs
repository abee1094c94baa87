//! The soak's report: what ran where, what was done to it, and each check
//! with its figures, printed and written to `report.md` and `report.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::chaos::Event;
use super::checks::converged::Judgement;
use super::checks::grants::{Audit, Touched};
use super::checks::orphans::Orphans;
use super::checks::resources::Trend;
use super::hosts::{Exit, Failover};
use super::ledger::{Change, Verdict};
use crate::bench::report::quantile_ms;

/// Everything the report says.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// How it ran: (what, how), in order.
    pub setup: Vec<(String, String)>,
    /// Changes the workload made, by (module, operation).
    pub changes: BTreeMap<(String, String), u64>,
    /// Operations the API server did not take.
    pub failed_operations: u64,
    /// Every chaos action.
    pub events: Vec<Event>,
    /// Every failover.
    pub failovers: Vec<Failover>,
    /// Hosts that exited unasked.
    pub exits: Vec<Exit>,
    /// The hostile guests: (lane, mode, what it does, what the host said).
    pub attacks: Vec<(String, String, String, String)>,
    /// Pokes of the hostile guests.
    pub pokes: u64,
    /// The ledger's verdict.
    pub lost: Verdict,
    /// Changes written down.
    pub recorded: usize,
    /// The final judgement of convergence.
    pub converged: Judgement,
    /// From the last change to every object converged (None: not within
    /// the settle timeout).
    pub convergence: Option<Duration>,
    /// The settle timeout.
    pub settle_timeout: Duration,
    /// Bystanders checked, and those touched.
    pub bystanders: (usize, Vec<Touched>),
    /// The audit log's judgement.
    pub audit: Audit,
    /// Each host process's memory and descriptors.
    pub trends: Vec<Trend>,
    /// The warm-up left out of the trends, and the least span judged.
    pub warm_up: (Duration, Duration),
    /// `--node`: each kubelet restart, from the kill to the Node Ready.
    pub kubelet_restarts: Vec<Duration>,
    /// `--node`: the orphan check (None without a node: nothing but the
    /// workload collects garbage).
    pub orphans: Option<Orphans>,
    /// Hosts at the end: (instance, healthy, leading).
    pub health: Vec<(String, bool, bool)>,
    /// What failed; empty when the soak passed.
    pub failures: Vec<String>,
    /// How long the whole soak took.
    pub took: Duration,
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// A series' start, after-warm-up and end marks, as JSON.
fn marks(marks: &[Option<(u64, usize)>; 3]) -> Value {
    let mark = |m: &Option<(u64, usize)>| {
        m.map_or(
            Value::Null,
            |(rss, fds)| json!({"rss_mib": mib(rss as f64), "fds": fds}),
        )
    };
    json!({
        "start": mark(&marks[0]),
        "after_warm_up": mark(&marks[1]),
        "end": mark(&marks[2]),
    })
}

fn change_name(change: &Change) -> String {
    format!(
        "{} {} {} ({}, expecting {:?})",
        change.lane.name(),
        change.module,
        change.name,
        change.what,
        change.expect
    )
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Changes the workload made (the garbage it collected apart).
    pub fn changes_made(&self) -> u64 {
        self.changes
            .iter()
            .filter(|((module, _), _)| module != "garbage collector")
            .map(|(_, n)| n)
            .sum()
    }

    /// Reconciles the hosts counted, over every process.
    pub fn reconciles(&self) -> f64 {
        self.trends.iter().map(|t| t.reconciles).sum()
    }

    fn latencies(&self) -> BTreeMap<String, Vec<Duration>> {
        let mut by: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
        for (change, took) in &self.lost.seen {
            by.entry(format!("{} ({})", change.module, change.what))
                .or_default()
                .push(*took);
            by.entry("all".into()).or_default().push(*took);
        }
        by
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Soak report\n");
        let _ = writeln!(
            out,
            "**{}** after {:.1} minutes.\n",
            if self.passed() { "PASSED" } else { "FAILED" },
            self.took.as_secs_f64() / 60.0
        );
        for failure in &self.failures {
            let _ = writeln!(out, "- FAILED: {failure}");
        }
        if !self.failures.is_empty() {
            out.push('\n');
        }
        let count = |prefix: &str| {
            self.events
                .iter()
                .filter(|e| e.what.starts_with(prefix) && e.error.is_none())
                .count()
        };
        let _ = writeln!(out, "## Summary\n");
        let _ = writeln!(out, "| figure | value |\n|---|---:|");
        let mut rows = vec![
            ("changes made", self.changes_made().to_string()),
            (
                "changes written down for the lost-reconcile check",
                self.recorded.to_string(),
            ),
            (
                "reconciles counted by the hosts",
                format!("{:.0}", self.reconciles()),
            ),
            (
                "convergence after the last change",
                self.convergence
                    .map_or_else(|| format!("not within {}", secs(self.settle_timeout)), secs),
            ),
            (
                "objects not converged",
                self.converged.unconverged.len().to_string(),
            ),
            ("bystanders touched", self.bystanders.1.len().to_string()),
            (
                "writes outside any grant (audit log)",
                self.audit.outside.len().to_string(),
            ),
            ("lost reconciles", self.lost.lost.len().to_string()),
            ("hot swaps", count("hot swap").to_string()),
            (
                "API server restarts",
                count("API server restarted").to_string(),
            ),
            ("failovers", self.failovers.len().to_string()),
            (
                "pair hosts that exited unasked",
                self.exits.len().to_string(),
            ),
        ];
        if let Some(orphans) = &self.orphans {
            rows.push((
                "kubelet restarts",
                format!(
                    "{} ({})",
                    self.kubelet_restarts.len(),
                    self.kubelet_restarts
                        .iter()
                        .map(|d| secs(*d))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            rows.push((
                "children deleted by the garbage collector",
                orphans.collected_total().to_string(),
            ));
            rows.push(("orphaned children left", orphans.orphans.len().to_string()));
        }
        for (what, value) in rows {
            let _ = writeln!(out, "| {what} | {value} |");
        }
        out.push('\n');
        let _ = writeln!(out, "## Setup\n");
        for (what, how) in &self.setup {
            let _ = writeln!(out, "- {what}: {how}");
        }

        let _ = writeln!(out, "\n## What was done\n");
        let total = self.changes_made();
        let _ = writeln!(
            out,
            "{total} changes ({} operations the API server did not take, while it restarted):\n",
            self.failed_operations
        );
        let _ = writeln!(out, "| module | operation | count |\n|---|---|---:|");
        for ((module, op), n) in &self.changes {
            let _ = writeln!(out, "| {module} | {op} | {n} |");
        }
        let mut kinds: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for event in &self.events {
            let kind = event
                .what
                .split([':', '('])
                .next()
                .unwrap_or_default()
                .trim()
                .replace(" in the steady lane to webapp-next", " (steady)")
                .replace(" in the pair lane to webapp-next", " (pair)")
                .replace(" in the steady lane to webapp", " (steady)")
                .replace(" in the pair lane to webapp", " (pair)");
            let entry = kinds.entry(kind).or_default();
            entry.0 += 1;
            entry.1 += usize::from(event.error.is_some());
        }
        let _ = writeln!(
            out,
            "\nChaos:\n\n| action | count | failed |\n|---|---:|---:|"
        );
        for (kind, (n, failed)) in &kinds {
            let _ = writeln!(out, "| {kind} | {n} | {failed} |");
        }
        if !self.failovers.is_empty() {
            // Pods only: the replacement's readiness.
            let pods = self.failovers.iter().any(|f| f.replaced.is_some());
            let _ = writeln!(
                out,
                "\nFailovers:\n\n| at | how | from → to | Lease taken | new leader ready |{}\n|---:|---|---|---:|---:|{}",
                if pods { " two Pods Ready |" } else { "" },
                if pods { "---:|" } else { "" }
            );
            for f in &self.failovers {
                let at = self
                    .events
                    .iter()
                    .find(|e| {
                        e.what.starts_with("failover")
                            && e.what.contains(&format!("{} → {}", f.from, f.to))
                    })
                    .map_or(String::new(), |e| secs(e.at));
                let _ = writeln!(
                    out,
                    "| {at} | {} | {} → {} | {} | {} |{}",
                    f.kind.name(),
                    f.from,
                    f.to,
                    secs(f.lease_taken),
                    secs(f.ready),
                    if pods {
                        format!(" {} |", f.replaced.map_or_else(|| "—".to_owned(), secs))
                    } else {
                        String::new()
                    }
                );
            }
        }
        let _ = writeln!(
            out,
            "\nHostile guests ({} objects, poked {} times in all):\n\n| lane | mode | what it does | what the host said |\n|---|---|---|---|",
            self.attacks.len(),
            self.pokes
        );
        for (lane, mode, what, said) in &self.attacks {
            let _ = writeln!(out, "| {lane} | {mode} | {what} | {said} |");
        }
        if !self.exits.is_empty() {
            let _ = writeln!(out, "\nHosts that exited unasked:\n");
            for exit in &self.exits {
                let _ = writeln!(
                    out,
                    "- {} ({}){}",
                    exit.id,
                    exit.status,
                    if exit.lost_lease {
                        ": it lost the Lease (the API server away longer than the renew deadline)"
                    } else {
                        ""
                    }
                );
            }
        }
        let _ = writeln!(out, "\nTimeline:\n");
        for event in &self.events {
            let _ = writeln!(
                out,
                "- {:>7} {} ({}){}",
                secs(event.at),
                event.what,
                secs(event.took),
                event
                    .error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" — FAILED: {e}"))
            );
        }

        let _ = writeln!(out, "\n## No reconcile lost\n");
        let _ = writeln!(
            out,
            "The hosts counted {:.0} reconciles in all (each process's `controller_runtime_reconcile_total` as last sampled; a killed process's last seconds are missing).\n",
            self.reconciles()
        );
        let superseded: usize = self.lost.superseded.values().sum();
        let _ = writeln!(
            out,
            "{} changes written down: {} seen reconciled, {} superseded before they were ({}), **{} lost**.\n",
            self.recorded,
            self.lost.seen.len(),
            superseded,
            self.lost
                .superseded
                .iter()
                .map(|(why, n)| format!("{n} {why}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.lost.lost.len()
        );
        let _ = writeln!(
            out,
            "From each change to the soak's watch seeing it reconciled:\n\n| changes | n | p50 (ms) | p99 (ms) | max (ms) |\n|---|---:|---:|---:|---:|"
        );
        for (what, took) in self.latencies() {
            let max = took.iter().max().copied().unwrap_or_default();
            let _ = writeln!(
                out,
                "| {what} | {} | {:.0} | {:.0} | {:.0} |",
                took.len(),
                quantile_ms(&took, 0.5),
                quantile_ms(&took, 0.99),
                max.as_secs_f64() * 1e3
            );
        }
        for (change, why) in self.lost.lost.iter().take(30) {
            let _ = writeln!(out, "- LOST: {}: {why}", change_name(change));
        }

        let _ = writeln!(out, "\n## Converged\n");
        match self.convergence {
            Some(took) => {
                let _ = writeln!(
                    out,
                    "Every object converged {} after the last change.",
                    secs(took)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "**Not every object converged** within {} of the last change.",
                    secs(self.settle_timeout)
                );
            }
        }
        let _ = writeln!(
            out,
            "Objects judged by their module's logic: {}.",
            self.converged
                .judged
                .iter()
                .map(|(m, n)| format!("{m} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for u in self.converged.unconverged.iter().take(30) {
            let _ = writeln!(
                out,
                "- NOT CONVERGED: {} {}: {}",
                u.lane.name(),
                u.object,
                u.why
            );
        }

        let _ = writeln!(out, "\n## Writes outside any grant\n");
        let _ = writeln!(
            out,
            "{} bystanders checked, {} touched. The audit log: {} writes inside the grants, {} attempts the API server refused, **{} outside**.\n",
            self.bystanders.0,
            self.bystanders.1.len(),
            self.audit.granted.values().sum::<u64>(),
            self.audit.refused.values().sum::<u64>(),
            self.audit.outside.len()
        );
        let _ = writeln!(out, "| lane | write | count |\n|---|---|---:|");
        for ((lane, what), n) in &self.audit.granted {
            let _ = writeln!(out, "| {lane} | {what} | {n} |");
        }
        for ((lane, code), n) in &self.audit.refused {
            let _ = writeln!(out, "| {lane} | refused by the API server ({code}) | {n} |");
        }
        for t in &self.bystanders.1 {
            let _ = writeln!(out, "- TOUCHED: {}: {}", t.object, t.change);
        }
        for o in self.audit.outside.iter().take(30) {
            let _ = writeln!(out, "- OUTSIDE: {o}");
        }
        if let Some(orphans) = &self.orphans {
            out.push_str(&orphans.markdown());
        }

        let _ = writeln!(
            out,
            "\n## Memory and descriptors\n\nSampled from /proc every 5 s; judged after a warm-up of {} when at least {} remain.\n",
            secs(self.warm_up.0),
            secs(self.warm_up.1)
        );
        let _ = writeln!(
            out,
            "| host | lived | RSS min / median / max (MiB) | RSS slope (MiB/h) | RSS growth (MiB) | FDs min / max | FD slope (/h) | CPU (s) | judged |\n|---|---|---|---:|---:|---|---:|---:|---|"
        );
        for t in &self.trends {
            let _ = writeln!(
                out,
                "| {} (pid {}) | {}–{} | {:.1} / {:.1} / {:.1} | {:.1} | {:.1} | {} / {} | {:.1} | {:.1} | {} |",
                t.id,
                t.pid,
                secs(t.lived.0),
                secs(t.lived.1),
                mib(t.rss.0 as f64),
                mib(t.rss.1 as f64),
                mib(t.rss.2 as f64),
                t.rss_slope,
                mib(t.rss_growth),
                t.fds.0,
                t.fds.1,
                t.fds_slope,
                t.cpu,
                match (&t.judged, &t.leak) {
                    (None, _) => "too short".to_owned(),
                    (Some(_), None) => "flat".to_owned(),
                    (Some(_), Some(why)) => format!("LEAK: {why}"),
                }
            );
        }
        let _ = writeln!(
            out,
            "\n| host | RSS start / after warm-up / end (MiB) | FDs start / after warm-up / end |\n|---|---|---|"
        );
        for t in &self.trends {
            let rss = |m: &Option<(u64, usize)>| {
                m.map_or("–".to_owned(), |(r, _)| format!("{:.1}", mib(r as f64)))
            };
            let fds = |m: &Option<(u64, usize)>| m.map_or("–".to_owned(), |(_, f)| f.to_string());
            let _ = writeln!(
                out,
                "| {} | {} / {} / {} | {} / {} / {} |",
                t.id,
                rss(&t.marks[0]),
                rss(&t.marks[1]),
                rss(&t.marks[2]),
                fds(&t.marks[0]),
                fds(&t.marks[1]),
                fds(&t.marks[2]),
            );
        }
        let _ = writeln!(out, "\n## Hosts at the end\n");
        for (id, healthy, leading) in &self.health {
            let _ = writeln!(
                out,
                "- {id}: {}{}",
                if *healthy { "healthy" } else { "NOT HEALTHY" },
                if *leading { ", leading" } else { "" }
            );
        }
        out
    }

    /// The report as JSON.
    pub fn json(&self) -> Value {
        let changes: Vec<Value> = self
            .changes
            .iter()
            .map(|((m, op), n)| json!({"module": m, "operation": op, "count": n}))
            .collect();
        let latencies: BTreeMap<String, Value> = self
            .latencies()
            .into_iter()
            .map(|(what, took)| {
                (
                    what,
                    json!({
                        "n": took.len(),
                        "p50_ms": quantile_ms(&took, 0.5),
                        "p99_ms": quantile_ms(&took, 0.99),
                        "max_ms": took.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1e3),
                    }),
                )
            })
            .collect();
        json!({
            "passed": self.passed(),
            "failures": self.failures,
            "took_s": self.took.as_secs_f64(),
            "setup": self.setup.iter().map(|(k, v)| json!({"what": k, "how": v})).collect::<Vec<_>>(),
            "changes": changes,
            "failed_operations": self.failed_operations,
            "events": self.events.iter().map(|e| json!({
                "at_s": e.at.as_secs_f64(), "what": e.what, "took_s": e.took.as_secs_f64(), "error": e.error,
            })).collect::<Vec<_>>(),
            "failovers": self.failovers.iter().map(|f| json!({
                "kind": f.kind.name(), "from": f.from, "to": f.to,
                "lease_taken_s": f.lease_taken.as_secs_f64(), "ready_s": f.ready.as_secs_f64(),
                "replaced_s": f.replaced.map(|d| d.as_secs_f64()),
            })).collect::<Vec<_>>(),
            "kubelet_restarts_s": self.kubelet_restarts.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
            "orphans": self.orphans.as_ref().map(Orphans::json),
            "exits": self.exits.iter().map(|e| json!({
                "id": e.id, "status": e.status, "lost_lease": e.lost_lease, "tail": e.tail,
            })).collect::<Vec<_>>(),
            "attacks": self.attacks.iter().map(|(lane, mode, what, said)| json!({
                "lane": lane, "mode": mode, "what": what, "host_said": said,
            })).collect::<Vec<_>>(),
            "pokes": self.pokes,
            "reconciles": {
                "recorded": self.recorded,
                "reconciles": self.reconciles(),
                "seen": self.lost.seen.len(),
                "superseded": self.lost.superseded,
                "lost": self.lost.lost.iter().map(|(c, why)| json!({"change": change_name(c), "why": why})).collect::<Vec<_>>(),
                "latency": latencies,
            },
            "converged": {
                "after_last_change_s": self.convergence.map(|d| d.as_secs_f64()),
                "judged": self.converged.judged,
                "unconverged": self.converged.unconverged.iter().map(|u| json!({
                    "lane": u.lane.name(), "object": u.object, "why": u.why,
                })).collect::<Vec<_>>(),
            },
            "grants": {
                "bystanders": self.bystanders.0,
                "touched": self.bystanders.1.iter().map(|t| json!({"object": t.object, "change": t.change})).collect::<Vec<_>>(),
                "audit": {
                    "granted": self.audit.granted.iter().map(|((lane, what), n)| json!({"lane": lane, "write": what, "count": n})).collect::<Vec<_>>(),
                    "refused": self.audit.refused.iter().map(|((lane, code), n)| json!({"lane": lane, "code": code, "count": n})).collect::<Vec<_>>(),
                    "outside": self.audit.outside,
                },
            },
            "resources": {
                "warm_up_s": self.warm_up.0.as_secs_f64(),
                "window_s": self.warm_up.1.as_secs_f64(),
                "hosts": self.trends.iter().map(|t| json!({
                    "id": t.id, "pid": t.pid,
                    "from_s": t.lived.0.as_secs_f64(), "to_s": t.lived.1.as_secs_f64(),
                    "samples": t.samples,
                    "rss_mib": {"min": mib(t.rss.0 as f64), "median": mib(t.rss.1 as f64), "max": mib(t.rss.2 as f64)},
                    "rss_slope_mib_per_h": t.rss_slope,
                    "rss_growth_mib": mib(t.rss_growth),
                    "fds": {"min": t.fds.0, "max": t.fds.1},
                    "marks": marks(&t.marks),
                    "fds_slope_per_h": t.fds_slope,
                    "fds_growth": t.fds_growth,
                    "cpu_s": t.cpu,
                    "judged_s": t.judged.map(|d| d.as_secs_f64()),
                    "leak": t.leak,
                })).collect::<Vec<_>>(),
            },
            "health": self.health.iter().map(|(id, healthy, leading)| json!({
                "id": id, "healthy": healthy, "leading": leading,
            })).collect::<Vec<_>>(),
        })
    }
}
