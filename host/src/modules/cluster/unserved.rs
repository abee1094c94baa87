//! Host classes in the ReconcilerModule controller: the class announced
//! while this host leads, and the one status a host writes for a module
//! of another class — `NoHostForClass`, when no host serves that class and
//! this host's class is the one that reports it (see `modules::class`).

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{Api, DynamicObject};

use super::Seen;
use super::status::{bounded, set_condition, write_status};
use crate::modules::class::{self, Announcer, HostClass};
use crate::modules::resource::{CONDITION_LOADED, CONDITION_READY};

/// Renews this host's class announcement and, when this host's class is
/// the one that reports them, says in their status which modules no host
/// serves.
pub(super) async fn serve_class(
    client: &Client,
    api: &Api<DynamicObject>,
    announcer: &Announcer,
    others: &HashMap<String, Seen>,
    failing: &mut bool,
) {
    match announcer.renew().await {
        Ok(()) => *failing = false,
        // Said once per run of failures, not every period.
        Err(error) if !*failing => {
            *failing = true;
            tracing::warn!(%error, class = %announcer.class(), "could not announce the host class (the host needs get, create and update on Leases in its namespace); another class's host may report this class's modules as unserved");
        }
        Err(error) => tracing::debug!(%error, "announcing the host class still fails"),
    }
    if others.is_empty() {
        return;
    }
    let live = match class::live_classes(client.clone()).await {
        Ok(live) => live,
        Err(error) => {
            tracing::debug!(%error, "could not list the host-class Leases; not reporting unserved modules");
            return;
        }
    };
    if !class::reports_unserved(&live, announcer.class()) {
        return;
    }
    let now = Time(jiff::Timestamp::now());
    for seen in others.values() {
        if HostClass::new(&seen.class).is_ok_and(|c| live.contains(&c)) {
            continue;
        }
        let message = class::unserved_message(&seen.class, &live);
        let says_so = |type_| {
            seen.status.condition(type_).is_some_and(|c| {
                c.status == "False"
                    && c.reason == class::NO_HOST_REASON
                    && c.message == bounded(&message)
                    && c.observed_generation == seen.generation
            })
        };
        if says_so(CONDITION_LOADED) && says_so(CONDITION_READY) {
            continue;
        }
        let mut status = seen.status.clone();
        status.observed_generation = seen.generation;
        for type_ in [CONDITION_LOADED, CONDITION_READY] {
            set_condition(
                &mut status.conditions,
                type_,
                false,
                class::NO_HOST_REASON,
                &message,
                seen.generation,
                &now,
            );
        }
        status.message = Some(bounded(&message).to_owned());
        tracing::info!(module = %seen.name, class = %seen.class, "no host serves the module's class");
        write_status(api, &seen.name, &status).await;
    }
}
