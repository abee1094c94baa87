//! `WebApp`: a small web application, run as a Deployment and, when it
//! listens on a port, exposed by a Service. The status reports readiness
//! from the Deployment the host observed.
//!
//! The example shows the shapes most operators have: two owned kinds,
//! children that come and go with the spec (remove `spec.port` and the
//! Service is pruned), status computed from observed children with a
//! `Ready` condition, module settings, and a permanent error for a spec
//! that can never work.

// clippy reads kube's repeated `printcolumn(type_ = …)` arguments as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use bosun_sdk::prelude::*;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PodSpec, PodTemplateSpec, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A web application: an image, how many replicas, and optionally a port to expose.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "examples.bosun.dev",
    version = "v1alpha1",
    kind = "WebApp",
    namespaced,
    status = "WebAppStatus",
    shortname = "wa",
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.image"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.readyReplicas"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct WebAppSpec {
    /// The container image to run.
    pub image: String,
    /// How many replicas to run.
    #[serde(default = "one")]
    pub replicas: i32,
    /// The port the application listens on. When set, a Service exposes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

fn one() -> i32 {
    1
}

/// What the controller observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebAppStatus {
    /// The generation of the spec this status describes (set by the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Replicas ready to serve, from the Deployment's status.
    #[serde(default)]
    pub ready_replicas: i32,
    /// The in-cluster URL, when the app is exposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `Ready`: true once every replica is ready.
    #[serde(default)]
    #[schemars(schema_with = "bosun_sdk::conditions::schema")]
    pub conditions: Vec<Condition>,
}

/// Module settings, given by the operator (`--settings` or the ReconcilerModule).
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Labels added to every child, e.g. a team or cost centre.
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
}

/// A revision baked in at build time (`WEBAPP_REVISION=2 cargo build …`):
/// every child is labelled with it and the module version carries it. It
/// makes a second, observably different version of the module, for the
/// hot-swap tests and demo.
pub const REVISION: Option<&str> = option_env!("WEBAPP_REVISION");

/// The label that carries [`REVISION`].
pub const REVISION_LABEL: &str = "examples.bosun.dev/revision";

/// A WebApp labelled with this and a build's [`REVISION`] fails to
/// reconcile in that revision (a retryable `BrokenRevision` error), and in
/// no other: a version that fails on some objects, for the canary tests.
/// A build without a revision never reads it.
pub const BREAKS_REVISION_LABEL: &str = "examples.bosun.dev/breaks-revision";

/// The webapp reconciler.
pub struct WebApps;

impl Reconciler for WebApps {
    type Object = WebApp;

    fn metadata() -> Metadata {
        let version = match REVISION {
            Some(revision) => format!("{}+rev{revision}", env!("CARGO_PKG_VERSION")),
            None => env!("CARGO_PKG_VERSION").to_owned(),
        };
        Metadata::new("webapp", version)
            .owns::<Deployment>()
            .owns::<Service>()
    }

    fn reconcile(app: &WebApp, ctx: &Context) -> Result<Response, Error> {
        if let Some(revision) = REVISION
            && app.labels().get(BREAKS_REVISION_LABEL).map(String::as_str) == Some(revision)
        {
            return Err(Error::retryable(
                "BrokenRevision",
                format!(
                    "revision {revision} fails on WebApps labelled {BREAKS_REVISION_LABEL}={revision}"
                ),
            ));
        }
        validate(&app.spec)?;
        let settings: Settings = ctx.settings()?.unwrap_or_default();
        let labels = labels(app, &settings);

        let mut response = Response::new().child(deployment(app, &labels));
        if let Some(port) = app.spec.port {
            response = response.child(service(app, &labels, port));
        }

        let ready_replicas = ctx
            .child::<Deployment>(&app.name_any())?
            .and_then(|d| d.status?.ready_replicas)
            .unwrap_or(0);
        let ready = ready_replicas >= app.spec.replicas;
        let mut conditions = app.status.clone().unwrap_or_default().conditions;
        let (reason, message) = if ready {
            (
                "AllReplicasReady",
                format!("{ready_replicas} of {} replicas ready", app.spec.replicas),
            )
        } else {
            (
                "ReplicasNotReady",
                format!("{ready_replicas} of {} replicas ready", app.spec.replicas),
            )
        };
        let was_ready = conditions::is_true(&conditions, "Ready");
        conditions::set(
            &mut conditions,
            ctx.condition("Ready", ready, reason, message),
        );
        if ready && !was_ready {
            response = response.event(Event::normal("Ready", "every replica is ready"));
        }

        Ok(response.status(WebAppStatus {
            observed_generation: None,
            ready_replicas,
            url: app.spec.port.map(|port| {
                format!(
                    "http://{}.{}.svc:{port}",
                    app.name_any(),
                    app.namespace().unwrap_or_default()
                )
            }),
            conditions,
        }))
    }
}

bosun_sdk::export!(WebApps);

/// A spec no retry can fix is a permanent error.
fn validate(spec: &WebAppSpec) -> Result<(), Error> {
    if spec.image.trim().is_empty() {
        return Err(Error::permanent(
            "InvalidSpec",
            "spec.image must name a container image",
        ));
    }
    if spec.replicas < 0 {
        return Err(Error::permanent(
            "InvalidSpec",
            format!("spec.replicas must not be negative, got {}", spec.replicas),
        ));
    }
    if let Some(port) = spec.port
        && !(1..=65535).contains(&port)
    {
        return Err(Error::permanent(
            "InvalidSpec",
            format!("spec.port must be 1-65535, got {port}"),
        ));
    }
    Ok(())
}

fn labels(app: &WebApp, settings: &Settings) -> BTreeMap<String, String> {
    let mut labels = settings.common_labels.clone();
    labels.insert("app.kubernetes.io/name".into(), app.name_any());
    labels.insert("app.kubernetes.io/managed-by".into(), "bosun".into());
    if let Some(revision) = REVISION {
        labels.insert(REVISION_LABEL.into(), revision.into());
    }
    labels
}

fn selector(app: &WebApp) -> BTreeMap<String, String> {
    [("app.kubernetes.io/name".to_owned(), app.name_any())].into()
}

/// The Deployment that runs the app.
pub fn deployment(app: &WebApp, labels: &BTreeMap<String, String>) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some(app.name_any()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(app.spec.replicas),
            selector: LabelSelector {
                match_labels: Some(selector(app)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "web".into(),
                        image: Some(app.spec.image.clone()),
                        ports: app.spec.port.map(|port| {
                            vec![ContainerPort {
                                container_port: port,
                                name: Some("http".into()),
                                ..ContainerPort::default()
                            }]
                        }),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The Service that exposes the app's port.
pub fn service(app: &WebApp, labels: &BTreeMap<String, String>, port: i32) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(app.name_any()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector(app)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port,
                target_port: Some(IntOrString::String("http".into())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
