//! Every trigger reaches a reconciler through the harness as the host sends
//! it, `read-changed` (new in `bosun:reconciler@0.2.0`) among them.

use bosun_sdk::prelude::*;
use bosun_sdk::testing::Harness;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};

/// Reports the trigger and attempt it was called with in its status.
struct Echo;

impl Reconciler for Echo {
    type Object = ConfigMap;

    fn metadata() -> Metadata {
        Metadata::new("echo", "0.1.0")
    }

    fn reconcile(_: &ConfigMap, ctx: &Context) -> Result<Response, Error> {
        Ok(Response::new().status(json!({
            "trigger": format!("{:?}", ctx.trigger()),
            "attempt": ctx.attempt(),
        })))
    }
}

#[test]
fn the_harness_hands_the_reconciler_any_trigger() {
    let object = ConfigMap::default();
    let cases = [
        (Trigger::ObjectChanged, "ObjectChanged"),
        (Trigger::ChildChanged, "ChildChanged"),
        (Trigger::ReadChanged, "ReadChanged"),
        (Trigger::Requeue, "Requeue"),
        (Trigger::Retry, "Retry"),
        (Trigger::Resync, "Resync"),
        (Trigger::ModuleChanged, "ModuleChanged"),
        (Trigger::Manual, "Manual"),
    ];
    for (attempt, (trigger, name)) in (1..).zip(cases) {
        let outcome = Harness::<Echo>::new()
            .trigger(trigger, attempt)
            .reconcile(&object)
            .expect("echo succeeds");
        assert_eq!(
            outcome.status::<Value>(),
            Some(json!({"trigger": name, "attempt": attempt})),
            "{trigger:?}"
        );
    }
    // Without one, a harness run is a one-off.
    let outcome = Harness::<Echo>::new().reconcile(&object).unwrap();
    assert_eq!(outcome.status::<Value>().unwrap()["trigger"], "Manual");
}
