//! The garbage collector a control plane without a node lacks: the soak
//! plays it every few seconds, so the children of deleted primaries do
//! not pile up. With `--node` kube-controller-manager's runs instead and
//! this is not called.

use std::collections::HashSet;

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams};

use super::cluster::{self, Lane};
use super::workload::Counts;

fn api(client: &kube::Client, lane: Lane, resource: &ApiResource) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), &lane.apps(), resource)
}

/// Plays kube-controller-manager's garbage collector, which a control
/// plane without a node does not run: deletes every child in the lanes'
/// namespaces whose controller no longer exists. Without it the
/// children of deleted objects pile up — in etcd, in the hosts' caches
/// of the kinds they own (growth that looks like a leak), and in the
/// Service IP range, until creating a Service fails. Children are
/// listed before their owners, so a child of an object created since
/// is never taken for garbage. Counted apart from the changes.
pub async fn collect(client: &kube::Client, counts: &mut Counts) {
    for lane in Lane::ALL {
        let mut children = Vec::new();
        for resource in [
            cluster::pods(),
            cluster::deployments(),
            cluster::services(),
            cluster::config_maps(),
        ] {
            let Ok(list) = api(client, lane, &resource)
                .list(&ListParams::default())
                .await
            else {
                // The API server away: next time.
                return;
            };
            children.extend(list.items.into_iter().map(|c| (resource.clone(), c)));
        }
        let mut live = HashSet::new();
        for resource in [
            cluster::ats(),
            cluster::webapps(),
            cluster::mirrors(),
            cluster::misbehaves(),
        ] {
            let Ok(list) = api(client, lane, &resource)
                .list(&ListParams::default())
                .await
            else {
                return;
            };
            live.extend(list.items.into_iter().filter_map(|o| o.metadata.uid));
        }
        for (resource, child) in children {
            let Some(owner) = child
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
            else {
                continue;
            };
            if live.contains(&owner.uid) {
                continue;
            }
            let Some(name) = child.metadata.name.as_deref() else {
                continue;
            };
            if api(client, lane, &resource)
                .delete(name, &DeleteParams::background())
                .await
                .is_ok()
            {
                *counts
                    .entry((
                        "garbage collector".to_owned(),
                        format!("{} of a deleted owner deleted", resource.kind),
                    ))
                    .or_default() += 1;
            }
        }
    }
}
