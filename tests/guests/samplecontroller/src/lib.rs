//! `Foo` from k8s.io/sample-controller — the reference controller of
//! *Programming Kubernetes* — written as a bosun reconciler, for the host's
//! end-to-end tests.
//!
//! A Foo names a Deployment (`spec.deploymentName`) and how many replicas
//! it runs; the controller keeps that Deployment and reports
//! `status.availableReplicas`. Its CRD (`crd.yaml`, as sample-controller
//! ships it) has neither `status.observedGeneration` nor `conditions`, like
//! most CRDs in the wild. sample-controller's own rule — a Deployment that
//! exists and is not controlled by the Foo is left alone, with a Warning —
//! is the host's rule for every module.

// clippy reads kube's derive arguments as duplicated attributes.
#![allow(clippy::duplicated_attributes)]
// The kind is called Foo, so its objects are `foo`s.
#![allow(clippy::disallowed_names)]

use bosun_sdk::prelude::*;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Deployment, by name and size.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "samplecontroller.k8s.io",
    version = "v1alpha1",
    kind = "Foo",
    namespaced,
    status = "FooStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct FooSpec {
    /// The Deployment to keep.
    #[serde(default)]
    pub deployment_name: String,
    /// Its replicas.
    #[serde(default)]
    pub replicas: Option<i32>,
}

/// What sample-controller reports: nothing more.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FooStatus {
    /// Replicas available, from the Deployment's status.
    pub available_replicas: i32,
}

/// The sample-controller reconciler.
pub struct SampleController;

impl Reconciler for SampleController {
    type Object = Foo;

    fn metadata() -> Metadata {
        Metadata::new("samplecontroller", env!("CARGO_PKG_VERSION")).owns::<Deployment>()
    }

    fn reconcile(foo: &Foo, ctx: &Context) -> Result<Response, Error> {
        let name = &foo.spec.deployment_name;
        if name.is_empty() {
            // sample-controller: "deployment name must be specified".
            return Err(Error::permanent(
                "InvalidSpec",
                format!("{}: deployment name must be specified", foo.name_any()),
            ));
        }
        let available = ctx
            .child::<Deployment>(name)?
            .and_then(|d| d.status?.available_replicas)
            .unwrap_or(0);
        Ok(Response::new().child(deployment(foo)).status(FooStatus {
            available_replicas: available,
        }))
    }
}

bosun_sdk::export!(SampleController);

/// The Deployment of a Foo, as sample-controller's `newDeployment`.
pub fn deployment(foo: &Foo) -> Deployment {
    let labels: std::collections::BTreeMap<String, String> = [
        ("app".to_owned(), "nginx".to_owned()),
        ("controller".to_owned(), foo.name_any()),
    ]
    .into();
    Deployment {
        metadata: ObjectMeta {
            name: Some(foo.spec.deployment_name.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: foo.spec.replicas,
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "nginx".to_owned(),
                        image: Some("nginx:latest".to_owned()),
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

#[cfg(test)]
mod tests {
    use bosun_sdk::testing::Harness;

    use super::*;

    fn foo(deployment: &str, replicas: i32) -> Foo {
        let mut foo = Foo::new(
            "example-foo",
            FooSpec {
                deployment_name: deployment.to_owned(),
                replicas: Some(replicas),
            },
        );
        foo.metadata.namespace = Some("default".into());
        foo
    }

    #[test]
    fn keeps_the_named_deployment_at_the_asked_size() {
        let outcome = Harness::<SampleController>::new()
            .reconcile(&foo("example-foo", 5))
            .unwrap();
        let deployments = outcome.children::<Deployment>();
        assert_eq!(deployments[0].metadata.name.as_deref(), Some("example-foo"));
        assert_eq!(deployments[0].spec.as_ref().unwrap().replicas, Some(5));
        assert_eq!(outcome.status::<FooStatus>().unwrap().available_replicas, 0);
    }

    #[test]
    fn a_foo_without_a_deployment_name_is_a_permanent_error() {
        let error = Harness::<SampleController>::new()
            .reconcile(&foo("", 1))
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("deployment name must be specified"),
            "{error}"
        );
    }
}
