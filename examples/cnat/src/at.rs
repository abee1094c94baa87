//! The `At` kind and cnat's logic: the whole reconciler but its export,
//! so that another component (the benchmark's `tests/guests/cnat-fleet`)
//! can compile the same logic under its own export.

use std::time::Duration;

use bosun_sdk::prelude::*;
use jiff::{Timestamp, civil::DateTime, tz::TimeZone};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Go layout the book uses for `spec.schedule`.
const SCHEDULE_LAYOUT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// Waiting for the schedule.
pub const PHASE_PENDING: &str = "PENDING";
/// The Pod has been created.
pub const PHASE_RUNNING: &str = "RUNNING";
/// The Pod has succeeded or failed.
pub const PHASE_DONE: &str = "DONE";

/// Runs `command` once, at `schedule`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cnat.programming-kubernetes.info",
    version = "v1alpha1",
    kind = "At",
    namespaced,
    status = "AtStatus",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Command", type_ = "string", json_path = ".spec.command"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase")
)]
pub struct AtSpec {
    /// When to run, in UTC: `2006-01-02T15:04:05Z`.
    pub schedule: String,
    /// The command to run in a busybox container, split on spaces.
    pub command: String,
}

/// Where an `At` is in its life.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct AtStatus {
    /// `PENDING`, `RUNNING` or `DONE`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    /// The generation of the spec this status describes (set by the host).
    #[serde(
        default,
        rename = "observedGeneration",
        skip_serializing_if = "Option::is_none"
    )]
    pub observed_generation: Option<i64>,
    /// Conditions: the host's `Reconciled=False` when the `At` cannot be
    /// reconciled (a schedule that does not parse, a Pod name taken).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "bosun_sdk::conditions::schema")]
    pub conditions: Vec<Condition>,
}

/// The cnat reconciler.
pub struct Cnat;

impl Reconciler for Cnat {
    type Object = At;

    fn metadata() -> Metadata {
        Metadata::new("cnat", env!("CARGO_PKG_VERSION")).owns::<Pod>()
    }

    fn reconcile(at: &At, ctx: &Context) -> Result<Response, Error> {
        let phase = at
            .status
            .as_ref()
            .map(|s| s.phase.as_str())
            .unwrap_or_default();
        let observed = ctx.child::<Pod>(&pod_name(at))?;
        match phase {
            PHASE_DONE => {
                // Done for good: keep the finished Pod (so it is not pruned)
                // as it was asked for — not as observed, whose defaulted
                // fields would be claimed and written again — but never
                // start it again once it is gone.
                Ok(match observed {
                    Some(_) => status(PHASE_DONE).child(pod(at)),
                    None => status(PHASE_DONE),
                })
            }
            PHASE_RUNNING => {
                let finished = observed
                    .as_ref()
                    .and_then(|pod| pod.status.as_ref()?.phase.as_deref())
                    .is_some_and(|p| p == "Succeeded" || p == "Failed");
                if finished {
                    Ok(status(PHASE_DONE).child(pod(at)).event(Event::normal(
                        "Done",
                        format!("pod {} finished", pod_name(at)),
                    )))
                } else {
                    Ok(status(PHASE_RUNNING).child(pod(at)))
                }
            }
            // No phase yet, or PENDING: wait for the schedule.
            _ => {
                let remaining = time_until(&at.spec.schedule, ctx.now())?;
                if remaining.is_zero() {
                    ctx.info(&format!(
                        "schedule {} reached; starting the command",
                        at.spec.schedule
                    ));
                    Ok(status(PHASE_RUNNING).child(pod(at)).event(
                        Event::normal(
                            "Started",
                            format!("created pod {} to run {:?}", pod_name(at), at.spec.command),
                        )
                        .action("Scheduling"),
                    ))
                } else {
                    Ok(status(PHASE_PENDING).requeue_after(remaining))
                }
            }
        }
    }
}

fn status(phase: &str) -> Response {
    Response::new().status(AtStatus {
        phase: phase.to_owned(),
        ..AtStatus::default()
    })
}

/// How long until `schedule`, zero once it has passed. A schedule that does
/// not parse is a permanent error: the user has to fix the object.
pub fn time_until(schedule: &str, now: Timestamp) -> Result<Duration, Error> {
    let due = DateTime::strptime(SCHEDULE_LAYOUT, schedule)
        .and_then(|dt| dt.to_zoned(TimeZone::UTC))
        .map(|zoned| zoned.timestamp())
        .map_err(|e| {
            Error::permanent(
                "InvalidSchedule",
                format!("schedule {schedule:?} is not in the layout 2006-01-02T15:04:05Z: {e}"),
            )
        })?;
    let remaining = now.duration_until(due);
    Ok(Duration::try_from(remaining).unwrap_or(Duration::ZERO))
}

fn pod_name(at: &At) -> String {
    format!("{}-pod", at.name_any())
}

/// The one-shot Pod that runs the command, as the book's `newPodForCR`.
pub fn pod(at: &At) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(at)),
            namespace: at.namespace(),
            labels: Some([("app".to_owned(), at.name_any())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "busybox".to_owned(),
                image: Some("busybox".to_owned()),
                command: Some(at.spec.command.split(' ').map(str::to_owned).collect()),
                ..Container::default()
            }],
            restart_policy: Some("OnFailure".to_owned()),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}
