//! The kinds `bosun new --owns` knows how to make a child of: for each, the
//! Rust type, the code that builds it, when it counts as ready, and what
//! the spec needs for it.

/// A kind a scaffolded reconciler may own.
pub(super) struct Owned {
    /// The kind, as given to `--owns`.
    pub kind: &'static str,
    /// The k8s-openapi items its code uses, the kind's own type first.
    pub imports: &'static [&'static str],
    /// What of the spec it uses.
    pub uses: &'static [Field],
    /// The builder function, `fn <lower>(object: &K, labels: …) -> Type`,
    /// with `{{Kind}}` for the primary's type.
    pub builder: String,
    /// A boolean expression over `observed: Option<Type>` and `object`:
    /// whether the child is ready.
    pub ready: &'static str,
    /// The observed child of a ready state, for the generated test: an
    /// expression of the type, using `name` (`"example"`).
    pub ready_example: &'static str,
}

/// A spec field the children use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Field {
    Image,
    Replicas,
    Port,
    Data,
}

impl Field {
    /// The field's declaration in the spec struct.
    pub fn declaration(self) -> &'static str {
        match self {
            Field::Image => {
                "    /// The container image to run.\n    #[serde(default = \"default_image\")]\n    pub image: String,\n"
            }
            Field::Replicas => {
                "    /// How many replicas to run.\n    #[serde(default = \"default_replicas\")]\n    pub replicas: i32,\n"
            }
            Field::Port => {
                "    /// The port the application listens on.\n    #[serde(default = \"default_port\")]\n    pub port: i32,\n"
            }
            Field::Data => {
                "    /// Data handed to the application.\n    #[serde(default)]\n    pub data: BTreeMap<String, String>,\n"
            }
        }
    }

    /// Its serde default function, if it has one.
    pub fn default_fn(self) -> Option<&'static str> {
        match self {
            Field::Image => Some("fn default_image() -> String {\n    \"nginx\".to_owned()\n}\n"),
            Field::Replicas => Some("fn default_replicas() -> i32 {\n    1\n}\n"),
            Field::Port => Some("fn default_port() -> i32 {\n    80\n}\n"),
            Field::Data => None,
        }
    }
}

const CONTAINER: &str = r#"Container {
                        name: "app".to_owned(),
                        image: Some(object.spec.image.clone()),
                        ports: Some(vec![ContainerPort {
                            name: Some("http".to_owned()),
                            container_port: object.spec.port,
                            ..ContainerPort::default()
                        }]),
                        ..Container::default()
                    }"#;

/// Every kind `--owns` accepts.
pub(super) fn catalogue() -> Vec<Owned> {
    vec![
        Owned {
            kind: "ConfigMap",
            imports: &["core::v1::ConfigMap"],
            uses: &[Field::Data],
            builder: r#"
/// The ConfigMap holding the spec's data.
pub fn config_map(object: &{{Kind}}, labels: &BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(object.name_any()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        data: Some(object.spec.data.clone()),
        ..ConfigMap::default()
    }
}
"#
            .to_owned(),
            ready: "observed.is_some()",
            ready_example: "ConfigMap { metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() }, ..ConfigMap::default() }",
        },
        Owned {
            kind: "Secret",
            imports: &["core::v1::Secret"],
            uses: &[Field::Data],
            builder: r#"
/// The Secret holding the spec's data.
pub fn secret(object: &{{Kind}}, labels: &BTreeMap<String, String>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(object.name_any()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        string_data: Some(object.spec.data.clone()),
        ..Secret::default()
    }
}
"#
            .to_owned(),
            ready: "observed.is_some()",
            ready_example: "Secret { metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() }, ..Secret::default() }",
        },
        Owned {
            kind: "ServiceAccount",
            imports: &["core::v1::ServiceAccount"],
            uses: &[],
            builder: r#"
/// The ServiceAccount the application runs as.
pub fn service_account(object: &{{Kind}}, labels: &BTreeMap<String, String>) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(object.name_any()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    }
}
"#
            .to_owned(),
            ready: "observed.is_some()",
            ready_example: "ServiceAccount { metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() }, ..ServiceAccount::default() }",
        },
        Owned {
            kind: "Service",
            imports: &[
                "core::v1::Service",
                "core::v1::ServicePort",
                "core::v1::ServiceSpec",
            ],
            uses: &[Field::Port],
            builder: r#"
/// The Service exposing the port to the pods carrying `labels`.
pub fn service(object: &{{Kind}}, labels: &BTreeMap<String, String>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(object.name_any()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(labels.clone()),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: object.spec.port,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
"#
            .to_owned(),
            ready: "observed.is_some()",
            ready_example: "Service { metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() }, ..Service::default() }",
        },
        Owned {
            kind: "Deployment",
            imports: &[
                "apps::v1::Deployment",
                "apps::v1::DeploymentSpec",
                "core::v1::Container",
                "core::v1::ContainerPort",
                "core::v1::PodSpec",
                "core::v1::PodTemplateSpec",
                "LabelSelector",
            ],
            uses: &[Field::Image, Field::Replicas, Field::Port],
            builder: with_container(&workload("Deployment", "deployment", "DeploymentSpec", "")),
            ready: "observed\n            .and_then(|d| d.status?.ready_replicas)\n            .unwrap_or(0)\n            >= object.spec.replicas",
            ready_example: "Deployment { metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() }, status: Some(k8s_openapi::api::apps::v1::DeploymentStatus { ready_replicas: Some(1), ..Default::default() }), ..Deployment::default() }",
        },
        Owned {
            kind: "StatefulSet",
            imports: &[
                "apps::v1::StatefulSet",
                "apps::v1::StatefulSetSpec",
                "core::v1::Container",
                "core::v1::ContainerPort",
                "core::v1::PodSpec",
                "core::v1::PodTemplateSpec",
                "LabelSelector",
            ],
            uses: &[Field::Image, Field::Replicas, Field::Port],
            builder: with_container(&workload(
                "StatefulSet",
                "stateful_set",
                "StatefulSetSpec",
                "\n            service_name: Some(object.name_any()),",
            )),
            ready: "observed\n            .and_then(|s| s.status?.ready_replicas)\n            .unwrap_or(0)\n            >= object.spec.replicas",
            ready_example: "StatefulSet { metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() }, status: Some(k8s_openapi::api::apps::v1::StatefulSetStatus { ready_replicas: Some(1), ..Default::default() }), ..StatefulSet::default() }",
        },
        Owned {
            kind: "Job",
            imports: &[
                "batch::v1::Job",
                "batch::v1::JobSpec",
                "core::v1::Container",
                "core::v1::PodSpec",
                "core::v1::PodTemplateSpec",
            ],
            uses: &[Field::Image],
            builder: r#"
/// The Job that runs the image to completion once.
pub fn job(object: &{{Kind}}, labels: &BTreeMap<String, String>) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some(object.name_any()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "app".to_owned(),
                        image: Some(object.spec.image.clone()),
                        ..Container::default()
                    }],
                    restart_policy: Some("Never".to_owned()),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}
"#
            .to_owned(),
            ready: "observed\n            .and_then(|j| j.status?.succeeded)\n            .unwrap_or(0)\n            >= 1",
            ready_example: "Job { metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() }, status: Some(k8s_openapi::api::batch::v1::JobStatus { succeeded: Some(1), ..Default::default() }), ..Job::default() }",
        },
        Owned {
            kind: "Pod",
            imports: &[
                "core::v1::Pod",
                "core::v1::Container",
                "core::v1::ContainerPort",
                "core::v1::PodSpec",
            ],
            uses: &[Field::Image, Field::Port],
            builder: with_container(POD_BUILDER),
            ready: "observed\n            .and_then(|p| p.status?.phase)\n            .is_some_and(|phase| phase == \"Running\" || phase == \"Succeeded\")",
            ready_example: "Pod { metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() }, status: Some(k8s_openapi::api::core::v1::PodStatus { phase: Some(\"Running\".into()), ..Default::default() }), ..Pod::default() }",
        },
    ]
}

const POD_BUILDER: &str = r#"
/// The Pod that runs the image.
pub fn pod(object: &{{Kind}}, labels: &BTreeMap<String, String>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(object.name_any()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![CONTAINER],
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}
"#;

fn workload(kind: &str, function: &str, spec: &str, extra: &str) -> String {
    format!(
        r#"
/// The {kind} that runs `spec.replicas` of the image.
pub fn {function}(object: &{{{{Kind}}}}, labels: &BTreeMap<String, String>) -> {kind} {{
    {kind} {{
        metadata: ObjectMeta {{
            name: Some(object.name_any()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        }},
        spec: Some({spec} {{
            replicas: Some(object.spec.replicas),{extra}
            selector: LabelSelector {{
                match_labels: Some(labels.clone()),
                ..LabelSelector::default()
            }},
            template: PodTemplateSpec {{
                metadata: Some(ObjectMeta {{
                    labels: Some(labels.clone()),
                    ..ObjectMeta::default()
                }}),
                spec: Some(PodSpec {{
                    containers: vec![CONTAINER],
                    ..PodSpec::default()
                }}),
            }},
            ..{spec}::default()
        }}),
        ..{kind}::default()
    }}
}}
"#
    )
}

/// `code` with the container template the workloads share in place of
/// `CONTAINER`.
fn with_container(code: &str) -> String {
    code.replace("vec![CONTAINER]", &format!("vec![{CONTAINER}]"))
}

/// The snake_case name of a kind's builder function.
pub(super) fn function_name(kind: &str) -> String {
    let mut name = String::new();
    for (i, c) in kind.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                name.push('_');
            }
            name.push(c.to_ascii_lowercase());
        } else {
            name.push(c);
        }
    }
    name
}
