//! The demo's first chapters: cnat, webapp, the trust boundary, a hot swap.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use bosun_testenv::node::Node;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::{NAMESPACE, api, api_in, done, object, phase, step, wait_until};

/// cnat, webapp, the trust boundary and a hot swap. On a real node the
/// At's Pod runs and the Deployment controller makes the WebApp's
/// replicas; on the control plane alone the demo plays both, and says so.
pub(super) async fn tell(
    client: &Client,
    modules: &Path,
    webapp_next: &Path,
    node: Option<&Node>,
) -> Result<()> {
    let ats = api(
        client,
        "cnat.programming-kubernetes.info",
        "v1alpha1",
        "At",
        "ats",
    );
    let apps = api(
        client,
        "examples.bosun.dev",
        "v1alpha1",
        "WebApp",
        "webapps",
    );
    let deployments = api(client, "apps", "v1", "Deployment", "deployments");
    let services = api(client, "", "v1", "Service", "services");
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);

    let schedule = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(8))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    step(&format!(
        "cnat: creating At `example-at`, due at {schedule} (in 8s), command `echo YAY`"
    ));
    ats.create(
        &PostParams::default(),
        &object(json!({
            "apiVersion": "cnat.programming-kubernetes.info/v1alpha1", "kind": "At",
            "metadata": {"name": "example-at"},
            "spec": {"schedule": schedule, "command": "echo YAY"}
        }))?,
    )
    .await?;
    wait_until("At phase PENDING", || async {
        Ok(phase(&ats, "example-at").await? == "PENDING")
    })
    .await?;
    done("status.phase = PENDING; no Pod yet, requeued for the due time");
    wait_until("the Pod", || async {
        Ok(pods.get_opt("example-at-pod").await?.is_some())
    })
    .await?;
    let pod = pods.get("example-at-pod").await?;
    let container = &pod.spec.as_ref().context("pod spec")?.containers[0];
    done(&format!(
        "Pod example-at-pod created: image {}, command {:?}, owned by At {}",
        container.image.as_deref().unwrap_or("?"),
        container.command.clone().unwrap_or_default(),
        pod.metadata
            .owner_references
            .as_ref()
            .and_then(|o| o.first())
            .map_or("?", |o| o.name.as_str())
    ));
    wait_until("At phase RUNNING", || async {
        Ok(phase(&ats, "example-at").await? == "RUNNING")
    })
    .await?;
    done("status.phase = RUNNING");
    if node.is_some() {
        step(
            "the kubelet runs the Pod: busybox (the stand-in, from Debian's busybox-static) runs `echo YAY`",
        );
        wait_until("At phase DONE", || async {
            Ok(phase(&ats, "example-at").await? == "DONE")
        })
        .await?;
        let log = pods
            .logs("example-at-pod", &LogParams::default())
            .await
            .context("the Pod's log")?;
        done(&format!(
            "the Pod Succeeded; its log (kubectl -n {NAMESPACE} logs example-at-pod): {}",
            log.trim()
        ));
    } else {
        step("playing the kubelet (no node here): the Pod ran `echo YAY` and Succeeded");
        pods.patch_status(
            "example-at-pod",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
        )
        .await?;
        wait_until("At phase DONE", || async {
            Ok(phase(&ats, "example-at").await? == "DONE")
        })
        .await?;
    }
    done("status.phase = DONE");

    step("webapp: creating WebApp `shop` (nginx, 2 replicas, port 8080)");
    apps.create(
        &PostParams::default(),
        &object(json!({
            "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
            "metadata": {"name": "shop"},
            "spec": {"image": "nginx:1.27", "replicas": 2, "port": 8080}
        }))?,
    )
    .await?;
    wait_until("the Deployment and the Service", || async {
        Ok(deployments.get_opt("shop").await?.is_some()
            && services.get_opt("shop").await?.is_some())
    })
    .await?;
    done("Deployment shop and Service shop created; Ready=False until 2 replicas are ready");
    if node.is_some() {
        step(
            "the Deployment controller makes a ReplicaSet, the scheduler places its 2 Pods, the kubelet runs them (the nginx stand-in: busybox httpd)",
        );
    } else {
        step("playing the Deployment controller (no node here): 2 replicas ready");
        deployments
            .patch_status(
                "shop",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"replicas": 2, "readyReplicas": 2}})),
            )
            .await?;
    }
    wait_until("Ready=True", || async {
        Ok(apps
            .get("shop")
            .await?
            .data
            .pointer("/status/conditions/0/status")
            == Some(&json!("True")))
    })
    .await?;
    done("WebApp shop: Ready=True, readyReplicas 2");
    if node.is_some() {
        let ip = services
            .get("shop")
            .await?
            .data
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let page = super::in_cluster::get_page(&ip, 8080).await;
        done(&format!(
            "Service shop answers at http://{ip}:8080 (kube-proxy's rules, inside the node): {}",
            page.lines().last().unwrap_or("no answer").trim()
        ));
    }
    step("removing spec.port from the WebApp");
    apps.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"port": null}})),
    )
    .await?;
    wait_until("the Service pruned", || async {
        Ok(services.get_opt("shop").await?.is_none())
    })
    .await?;
    done("Service shop pruned; the Deployment stays");

    step(
        "the trust boundary: a WebApp named `kubernetes` in `default` wants the API server's own Service",
    );
    let defaults = api_in(
        client,
        "default",
        "examples.bosun.dev",
        "v1alpha1",
        "WebApp",
        "webapps",
    );
    let default_services = api_in(client, "default", "", "v1", "Service", "services");
    let before = default_services
        .get("kubernetes")
        .await?
        .metadata
        .resource_version;
    defaults
        .create(
            &PostParams::default(),
            &object(json!({
                "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
                "metadata": {"name": "kubernetes"},
                "spec": {"image": "nginx", "replicas": 1, "port": 8080}
            }))?,
        )
        .await?;
    let refusal = || async {
        let app = defaults.get("kubernetes").await?;
        Ok::<_, anyhow::Error>(
            app.data
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| c["type"] == "Reconciled"))
                .and_then(|c| c["message"].as_str())
                .map(str::to_owned),
        )
    };
    wait_until("the refusal on the WebApp", || async {
        Ok(refusal().await?.is_some())
    })
    .await?;
    let refusal = refusal().await?.unwrap_or_default();
    let after = default_services
        .get("kubernetes")
        .await?
        .metadata
        .resource_version;
    anyhow::ensure!(before == after, "the kubernetes Service was written");
    done(&format!("Reconciled=False, ChildExists: {refusal}"));
    done(
        "the kubernetes Service is untouched (same resourceVersion); `kubectl -n default describe webapp kubernetes` shows the Warning event",
    );
    defaults
        .delete("kubernetes", &kube::api::DeleteParams::default())
        .await?;
    let default_deployments = api_in(client, "default", "apps", "v1", "Deployment", "deployments");
    if node.is_some() {
        wait_until("the WebApp's Deployment garbage-collected", || async {
            Ok(default_deployments.get_opt("kubernetes").await?.is_none())
        })
        .await?;
        done("WebApp kubernetes deleted: the garbage collector deleted its Deployment with it");
    } else {
        done(
            "WebApp kubernetes deleted; without a garbage collector its Deployment stays in `default`",
        );
    }

    step("hot swap: dropping a new version of webapp (revision 2) into the modules directory");
    let staging = modules.join(".webapp.wasm.partial");
    std::fs::copy(webapp_next, &staging)?;
    let swapped = Instant::now();
    std::fs::rename(&staging, modules.join("webapp.wasm"))?;
    wait_until("the Deployment reconciled by the new version", || async {
        let deployment = deployments.get("shop").await?;
        Ok(deployment
            .labels()
            .get("examples.bosun.dev/revision")
            .map(String::as_str)
            == Some("2"))
    })
    .await?;
    done(&format!(
        "WebApp shop reconciled again by webapp 0.1.0+rev2 {} ms after the file landed; its Deployment now carries examples.bosun.dev/revision=2",
        swapped.elapsed().as_millis()
    ));

    Ok(())
}
