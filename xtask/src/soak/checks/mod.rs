//! What the soak checks at the end, one concern each: every object
//! converged to what its module wants ([`converged`]), zero writes outside
//! any grant ([`grants`]), the hosts' memory and descriptors flat after
//! warm-up ([`resources`]), with `--node` no child outliving its primary
//! ([`orphans`]). No reconcile lost is the [`Ledger`]'s
//! verdict. [`failures`] reads what failed off the report's figures.
//!
//! [`Ledger`]: super::ledger::Ledger

pub mod converged;
pub mod grants;
pub mod orphans;
pub mod resources;

use super::report::Report;

/// What failed, from the report's figures.
pub fn failures(report: &Report, steady_died: Option<&str>) -> Vec<String> {
    let mut failures = Vec::new();
    if let Some(why) = steady_died {
        failures.push(format!("the steady host died: {why}"));
    }
    for exit in report.exits.iter().filter(|e| !e.lost_lease) {
        failures.push(format!(
            "pair host {} exited unasked ({}) without losing its Lease:\n{}",
            exit.id, exit.status, exit.tail
        ));
    }
    for event in &report.events {
        if let Some(error) = &event.error {
            failures.push(format!(
                "{} at {:.0} s failed: {error}",
                event.what,
                event.at.as_secs_f64()
            ));
        }
    }
    if report.convergence.is_none() {
        failures.push(format!(
            "{} objects did not converge within {:?} of the last change",
            report.converged.unconverged.len(),
            report.settle_timeout
        ));
    }
    if !report.lost.lost.is_empty() {
        failures.push(format!(
            "{} changes were never seen reconciled",
            report.lost.lost.len()
        ));
    }
    if let Some(orphans) = &report.orphans
        && !orphans.orphans.is_empty()
    {
        failures.push(format!(
            "{} children outlived their primaries",
            orphans.orphans.len()
        ));
    }
    if !report.bystanders.1.is_empty() {
        failures.push(format!(
            "{} bystanders were written",
            report.bystanders.1.len()
        ));
    }
    if !report.audit.outside.is_empty() {
        failures.push(format!(
            "{} writes outside every grant",
            report.audit.outside.len()
        ));
    }
    for trend in &report.trends {
        if let Some(why) = &trend.leak {
            failures.push(format!("host {}: {why}", trend.id));
        }
    }
    for (id, healthy, _) in &report.health {
        if !healthy {
            failures.push(format!("host {id} was not healthy at the end"));
        }
    }
    if !report.health.iter().any(|(_, _, leading)| *leading) {
        failures.push("no host of the pair led at the end".into());
    }
    failures
}
