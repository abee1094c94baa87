//! Turns a validated response into the writes the host will make: the
//! children to server-side-apply (with the namespace and controller
//! ownerReference set by the host), the observed children to prune, and
//! the status to write.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::discovery::StatusRoom;
use crate::engine::bindings as wit;
use crate::meta::{ModuleMeta, group_of};
use crate::validate::{Primary, ValidResponse, ValidationError, validate};

/// What shapes a plan besides the guest's response: what the primary's
/// status can hold, and where the module may write.
#[derive(Debug, Clone, Copy)]
pub struct PlanContext<'a> {
    /// The room in the primary's status schema for what the host adds.
    pub status: StatusRoom,
    /// The namespaces the module was granted; empty: every namespace.
    pub namespaces: &'a [String],
}

impl PlanContext<'_> {
    /// Offline, as `bosun reconcile` plans: room for everything, every
    /// namespace.
    pub const OFFLINE: PlanContext<'static> = PlanContext {
        status: StatusRoom::ANY,
        namespaces: &[],
    };
}

/// Server-populated metadata a guest may have echoed back; applying them
/// would turn into preconditions or be rejected, so the host drops them.
const SERVER_FIELDS: [&str; 8] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The condition type the host owns: `False` after a permanent error, with
/// the guest's reason and message. A successful reconcile clears it, even
/// when the guest echoes the conditions it was given.
pub const RECONCILED_CONDITION: &str = "Reconciled";

/// An object the plan deletes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// Its apiVersion.
    pub api_version: String,
    /// Its kind.
    pub kind: String,
    /// Its namespace, if namespaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

/// Everything one reconcile will write.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Children to server-side-apply, in the order the guest returned them.
    pub apply: Vec<Value>,
    /// Observed children no longer desired that the safety rules allow
    /// the host to delete.
    pub prune: Vec<ObjectRef>,
    /// The status to write, with `observedGeneration` and condition
    /// transition times settled; None leaves the status alone.
    pub status: Option<Value>,
    /// When to reconcile again.
    pub requeue_after: Option<Duration>,
    /// Events to record.
    pub events: Vec<wit::Event>,
}

/// Validates what a guest returned for `object` and plans the writes: the
/// one path from a guest's answer to the host's writes, shared by the
/// operator and `bosun reconcile`.
pub fn plan_response(
    meta: &ModuleMeta,
    ctx: &PlanContext<'_>,
    object: &Value,
    observed: &[Value],
    response: wit::Response,
    now: Timestamp,
) -> Result<Plan, ValidationError> {
    let primary = Primary::from_object(object)?;
    let valid = validate(meta, &primary, ctx.namespaces, response)?;
    Ok(plan(
        meta,
        ctx.status,
        &primary,
        object.get("status"),
        observed,
        valid,
        now,
    ))
}

/// Plans the writes for `response`, given the primary's current status and
/// the children the host observed.
pub fn plan(
    meta: &ModuleMeta,
    room: StatusRoom,
    primary: &Primary,
    current_status: Option<&Value>,
    observed: &[Value],
    response: ValidResponse,
    now: Timestamp,
) -> Plan {
    let owner = owner_reference(primary);
    let apply: Vec<Value> = response
        .children
        .into_iter()
        .map(|child| {
            let mut object = child.object;
            let metadata = object
                .entry("metadata")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(metadata) = metadata {
                for field in SERVER_FIELDS {
                    metadata.remove(field);
                }
                match child.namespace {
                    Some(namespace) => {
                        metadata.insert("namespace".into(), Value::String(namespace))
                    }
                    None => metadata.remove("namespace"),
                };
                metadata.insert("ownerReferences".into(), json!([owner]));
            }
            Value::Object(object)
        })
        .collect();

    let desired: Vec<ObjectRef> = apply.iter().filter_map(object_ref).collect();
    let prune = observed
        .iter()
        .filter(|child| is_prunable(meta, primary, child))
        .filter_map(object_ref)
        .filter(|child| !desired.iter().any(|d| same_object(d, child)))
        .collect();

    Plan {
        apply,
        prune,
        status: response
            .status
            .map(|status| settle_status(room, primary, current_status, status, now)),
        requeue_after: response.requeue_after,
        events: response.events,
    }
}

/// The controller ownerReference the host puts on every child.
pub fn owner_reference(primary: &Primary) -> Value {
    json!({
        "apiVersion": primary.api_version,
        "kind": primary.kind,
        "name": primary.name,
        "uid": primary.uid,
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The pruning rule: the host deletes only an object of an owned kind whose
/// controller ownerReference is this primary's UID and that this module's
/// field manager applied. Anything else stays, whatever the guest returns.
pub fn is_prunable(meta: &ModuleMeta, primary: &Primary, child: &Value) -> bool {
    let text = |pointer: &str| {
        child
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    if primary.uid.is_empty() || meta.owned(text("/apiVersion"), text("/kind")).is_none() {
        return false;
    }
    let controlled = child
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|owners| {
            owners.iter().any(|o| {
                o.get("controller").and_then(Value::as_bool) == Some(true)
                    && o.get("uid").and_then(Value::as_str) == Some(primary.uid.as_str())
            })
        });
    let manager = meta.field_manager();
    let applied = child
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|entries| {
            entries.iter().any(|e| {
                e.get("manager").and_then(Value::as_str) == Some(manager.as_str())
                    && e.get("operation").and_then(Value::as_str) == Some("Apply")
            })
        });
    controlled && applied
}

fn object_ref(object: &Value) -> Option<ObjectRef> {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Some(ObjectRef {
        api_version: text("/apiVersion")?,
        kind: text("/kind")?,
        namespace: text("/metadata/namespace"),
        name: text("/metadata/name")?,
    })
}

/// The same object, whichever version of its group it is seen through.
fn same_object(a: &ObjectRef, b: &ObjectRef) -> bool {
    a.kind == b.kind
        && a.name == b.name
        && a.namespace == b.namespace
        && group_of(&a.api_version) == group_of(&b.api_version)
}

/// Sets `observedGeneration` and settles conditions the way
/// `meta.SetStatusCondition` does: a condition whose status did not change
/// keeps its `lastTransitionTime`; a new or flipped one gets `now` unless
/// the guest set a time. What the host adds goes only where the status
/// schema has room for it (`room`), so a CRD without `observedGeneration`
/// gets the guest's status as it is.
fn settle_status(
    room: StatusRoom,
    primary: &Primary,
    current: Option<&Value>,
    mut status: Map<String, Value>,
    now: Timestamp,
) -> Value {
    if room.observed_generation
        && let Some(generation) = primary.generation
    {
        status.insert("observedGeneration".into(), json!(generation));
    }
    let current_conditions = current
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if let Some(Value::Array(conditions)) = status.get_mut("conditions") {
        conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some(RECONCILED_CONDITION));
        for condition in conditions.iter_mut().filter_map(Value::as_object_mut) {
            let type_ = condition.get("type").cloned();
            let previous = current_conditions
                .iter()
                .find(|c| c.get("type").is_some() && c.get("type") == type_.as_ref());
            match previous {
                Some(previous) if previous.get("status") == condition.get("status") => {
                    if let Some(time) = previous.get("lastTransitionTime") {
                        condition.insert("lastTransitionTime".into(), time.clone());
                    }
                }
                _ => {
                    condition
                        .entry("lastTransitionTime")
                        .or_insert_with(|| json!(now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()));
                }
            }
            if room.condition_observed_generation
                && let Some(generation) = primary.generation
            {
                condition
                    .entry("observedGeneration")
                    .or_insert(json!(generation));
            }
        }
    }
    Value::Object(status)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::meta::{Kind, Scope};

    fn meta() -> ModuleMeta {
        ModuleMeta {
            name: "webapp".into(),
            version: "0.1.0".into(),
            primary: Kind {
                group: "examples.bosun.dev".into(),
                version: "v1alpha1".into(),
                kind: "WebApp".into(),
                plural: "webapps".into(),
                scope: Scope::Namespaced,
            },
            owns: vec![Kind {
                group: String::new(),
                version: "v1".into(),
                kind: "Service".into(),
                plural: "services".into(),
                scope: Scope::Namespaced,
            }],
            reads: vec![],
            finalizer: None,
            http_origins: vec![],
        }
    }

    fn primary() -> Primary {
        Primary::from_object(&json!({
            "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
            "metadata": {"name": "shop", "namespace": "team-a", "uid": "u-1", "generation": 4}
        }))
        .unwrap()
    }

    fn now() -> Timestamp {
        "2026-11-25T10:00:00Z".parse().unwrap()
    }

    fn planned(
        children: Vec<Value>,
        status: Option<Value>,
        current: Option<Value>,
        observed: &[Value],
    ) -> Plan {
        let response = wit::Response {
            children: children.iter().map(Value::to_string).collect(),
            status: status.map(|s| s.to_string()),
            requeue_after_ms: Some(1500),
            events: vec![],
        };
        let valid = validate(&meta(), &primary(), &[], response).unwrap();
        plan(
            &meta(),
            StatusRoom::ANY,
            &primary(),
            current.as_ref(),
            observed,
            valid,
            now(),
        )
    }

    fn observed_service(name: &str, uid: &str, manager: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {
            "name": name, "namespace": "team-a",
            "ownerReferences": [{"apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp", "name": "shop", "uid": uid, "controller": true}],
            "managedFields": [{"manager": manager, "operation": "Apply"}]
        }})
    }

    #[test]
    fn sets_namespace_and_controller_reference_and_drops_server_fields() {
        let plan = planned(
            vec![
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop", "resourceVersion": "7", "uid": "x"}}),
            ],
            None,
            None,
            &[],
        );
        let service = &plan.apply[0];
        assert_eq!(service["metadata"]["namespace"], "team-a");
        assert_eq!(
            service["metadata"]["ownerReferences"],
            json!([{
                "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp", "name": "shop",
                "uid": "u-1", "controller": true, "blockOwnerDeletion": true
            }])
        );
        assert!(service["metadata"].get("resourceVersion").is_none());
        assert!(service["metadata"].get("uid").is_none());
        assert_eq!(plan.requeue_after, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn prunes_only_what_this_module_applied_and_controls() {
        let observed = [
            observed_service("kept", "u-1", "bosun/webapp"),
            observed_service("stale", "u-1", "bosun/webapp"),
            observed_service("someone-elses", "u-9", "bosun/webapp"),
            observed_service("hand-made", "u-1", "kubectl"),
        ];
        let plan = planned(
            vec![json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kept"}})],
            None,
            None,
            &observed,
        );
        let pruned: Vec<_> = plan.prune.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(pruned, ["stale"]);
    }

    #[test]
    fn sets_observed_generation_and_new_condition_times() {
        let plan = planned(
            vec![],
            Some(
                json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Up", "message": ""}]}),
            ),
            None,
            &[],
        );
        let status = plan.status.unwrap();
        assert_eq!(status["observedGeneration"], 4);
        assert_eq!(
            status["conditions"][0]["lastTransitionTime"],
            "2026-11-25T10:00:00Z"
        );
        assert_eq!(status["conditions"][0]["observedGeneration"], 4);
    }

    #[test]
    fn adds_nothing_the_status_schema_has_no_room_for() {
        let response = wit::Response {
            children: vec![],
            status: Some(json!({"availableReplicas": 1, "conditions": [{"type": "Ready", "status": "True"}]}).to_string()),
            requeue_after_ms: None,
            events: vec![],
        };
        let valid = validate(&meta(), &primary(), &[], response).unwrap();
        let plan = plan(
            &meta(),
            StatusRoom::BARE,
            &primary(),
            None,
            &[],
            valid,
            now(),
        );
        let status = plan.status.unwrap();
        assert!(status.get("observedGeneration").is_none(), "{status}");
        assert!(status["conditions"][0].get("observedGeneration").is_none());
        assert_eq!(status["availableReplicas"], 1);
    }

    #[test]
    fn a_successful_reconcile_clears_the_hosts_reconciled_condition() {
        let echoed = json!({"conditions": [
            {"type": "Reconciled", "status": "False", "reason": "InvalidSpec"},
            {"type": "Ready", "status": "True"}
        ]});
        let plan = planned(vec![], Some(echoed.clone()), Some(echoed), &[]);
        let types: Vec<_> = plan.status.unwrap()["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].clone())
            .collect();
        assert_eq!(types, [json!("Ready")]);
    }

    #[test]
    fn keeps_the_transition_time_of_an_unchanged_condition() {
        let current = json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        let desired = json!({"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-25T09:59:59Z"}]});
        let plan = planned(vec![], Some(desired), Some(current.clone()), &[]);
        assert_eq!(
            plan.status.unwrap()["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );

        let flipped = json!({"conditions": [{"type": "Ready", "status": "False"}]});
        let plan = planned(vec![], Some(flipped), Some(current), &[]);
        assert_eq!(
            plan.status.unwrap()["conditions"][0]["lastTransitionTime"],
            "2026-11-25T10:00:00Z"
        );
    }
}
