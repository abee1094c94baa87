//! The demo's chapter on event-driven reads: a Mirror follows the ConfigMaps
//! it read — changed, selected by a label, deleted — with no mapping
//! function and no resync, and its module, confined to the demo namespace
//! by its grant, caches ConfigMaps there only.

use std::time::Instant;

use anyhow::Result;
use kube::Client;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::{NAMESPACE, api, done, http_get, object, step, wait_until};

pub(super) async fn tell(client: &Client, port: u16) -> Result<()> {
    let config_maps = api(client, "", "v1", "ConfigMap", "configmaps");
    let mirrors = api(
        client,
        "examples.bosun.dev",
        "v1alpha1",
        "Mirror",
        "mirrors",
    );
    let post = PostParams::default();

    step(
        "mirror: ConfigMap `settings` (app=shop) and Mirror `shop` (mirrors `settings`, selects app=shop)",
    );
    config_maps
        .create(
            &post,
            &object(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings", "labels": {"app": "shop"}},
                "data": {"greeting": "hello"}}))?,
        )
        .await?;
    mirrors
        .create(
            &post,
            &object(
                json!({"apiVersion": "examples.bosun.dev/v1alpha1", "kind": "Mirror",
                "metadata": {"name": "shop"},
                "spec": {"configMapName": "settings", "selector": "app=shop"}}),
            )?,
        )
        .await?;
    let status = |mirrors: kube::Api<kube::api::DynamicObject>| async move {
        Ok::<Value, anyhow::Error>(
            mirrors
                .get("shop")
                .await?
                .data
                .get("status")
                .cloned()
                .unwrap_or(Value::Null),
        )
    };
    wait_until("Mirror shop to mirror settings", || async {
        Ok(status(mirrors.clone()).await?["data"]["greeting"] == "hello")
    })
    .await?;
    done(
        "status.data.greeting=hello, status.selected=[settings]: what it read, by name and by selector",
    );

    step("mirror: changing the ConfigMap's data (greeting=hi); nothing touches the Mirror");
    let changed = Instant::now();
    config_maps
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"greeting": "hi"}})),
        )
        .await?;
    wait_until("Mirror shop to follow the change", || async {
        Ok(status(mirrors.clone()).await?["data"]["greeting"] == "hi")
    })
    .await?;
    done(&format!(
        "Mirror shop reconciled {} ms later, triggered by what its last reconcile read (read-changed)",
        changed.elapsed().as_millis()
    ));

    step("mirror: creating ConfigMap `extra` labelled app=shop");
    config_maps
        .create(
            &post,
            &object(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "extra", "labels": {"app": "shop"}}}))?,
        )
        .await?;
    wait_until("Mirror shop to select it", || async {
        Ok(status(mirrors.clone()).await?["selected"] == json!(["extra", "settings"]))
    })
    .await?;
    done("status.selected=[extra, settings]: an object entering a selection it listed");

    step("mirror: deleting ConfigMap `settings`");
    config_maps
        .delete("settings", &DeleteParams::default())
        .await?;
    wait_until("Mirror shop to notice", || async {
        Ok(status(mirrors.clone()).await?["found"] == false)
    })
    .await?;
    done("status.found=false, status.selected=[extra]");

    let metrics = http_get(port, "/metrics").await?;
    let line = |prefix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or(prefix)
            .to_owned()
    };
    done(&format!(
        "{}; the module is granted namespace {NAMESPACE} only, so ConfigMaps are cached there only: {}",
        line("bosun_read_triggers_total{module=\"mirror\"}"),
        line("bosun_cached_objects{kind=\"ConfigMap.v1\"")
    ));
    Ok(())
}
