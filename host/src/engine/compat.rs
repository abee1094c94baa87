//! Conversions between the current contract's types and those of the
//! earlier versions the host still serves: a request goes down to the
//! version a component targets, what it answers comes back up. Everything
//! that adapts one version to another is here, beside its tests; the rest of
//! the host never sees an earlier version's types.

/// `bosun:reconciler@0.1.0` ↔ the current version. 0.2.0 added the
/// `read-changed` trigger and changed nothing else, so every conversion but
/// the trigger's is one-to-one.
pub(super) mod v0_1 {
    use crate::engine::bindings as current;
    use crate::engine::bindings::v0_1::bosun::reconciler::host as old_host;
    use crate::engine::bindings::v0_1::bosun::reconciler::types as old;

    /// Why a call runs, as 0.1.0 can say it. `read-changed` becomes
    /// `resync`: of 0.1.0's triggers the one that claims nothing new about
    /// the object itself or its children, which is what a change to
    /// something it read is from where the guest stands.
    pub fn trigger(trigger: current::Trigger) -> old::Trigger {
        match trigger {
            current::Trigger::ObjectChanged => old::Trigger::ObjectChanged,
            current::Trigger::ChildChanged => old::Trigger::ChildChanged,
            current::Trigger::ReadChanged => old::Trigger::Resync,
            current::Trigger::Requeue => old::Trigger::Requeue,
            current::Trigger::Retry => old::Trigger::Retry,
            current::Trigger::Resync => old::Trigger::Resync,
            current::Trigger::ModuleChanged => old::Trigger::ModuleChanged,
            current::Trigger::Manual => old::Trigger::Manual,
        }
    }

    /// The request for a 0.1.0 component: a copy, since the generated call
    /// lowers from its own type. A 0.1.0 module pays one extra copy of the
    /// request's JSON per call; the current version pays none.
    pub fn request(request: &current::Request) -> old::Request {
        old::Request {
            object: request.object.clone(),
            children: request.children.clone(),
            settings: request.settings.clone(),
            trigger: trigger(request.trigger),
            attempt: request.attempt,
        }
    }

    pub fn response(response: old::Response) -> current::Response {
        current::Response {
            children: response.children,
            status: response.status,
            requeue_after_ms: response.requeue_after_ms,
            events: response.events.into_iter().map(event).collect(),
        }
    }

    pub fn finalize_response(response: old::FinalizeResponse) -> current::FinalizeResponse {
        current::FinalizeResponse {
            done: response.done,
            requeue_after_ms: response.requeue_after_ms,
            events: response.events.into_iter().map(event).collect(),
        }
    }

    pub fn reconcile_error(error: old::ReconcileError) -> current::ReconcileError {
        match error {
            old::ReconcileError::Retryable(failure) => {
                current::ReconcileError::Retryable(self::failure(failure))
            }
            old::ReconcileError::Permanent(failure) => {
                current::ReconcileError::Permanent(self::failure(failure))
            }
        }
    }

    pub fn module_info(info: old::ModuleInfo) -> current::ModuleInfo {
        current::ModuleInfo {
            name: info.name,
            version: info.version,
            primary: api_kind(info.primary),
            owns: info.owns.into_iter().map(api_kind).collect(),
            reads: info.reads.into_iter().map(api_kind).collect(),
            finalizer: info.finalizer,
            http_origins: info.http_origins,
        }
    }

    pub fn log_level(level: old_host::LogLevel) -> current::LogLevel {
        match level {
            old_host::LogLevel::Trace => current::LogLevel::Trace,
            old_host::LogLevel::Debug => current::LogLevel::Debug,
            old_host::LogLevel::Info => current::LogLevel::Info,
            old_host::LogLevel::Warn => current::LogLevel::Warn,
            old_host::LogLevel::Error => current::LogLevel::Error,
        }
    }

    fn event(event: old::Event) -> current::Event {
        current::Event {
            event_type: match event.event_type {
                old::EventType::Normal => current::EventType::Normal,
                old::EventType::Warning => current::EventType::Warning,
            },
            reason: event.reason,
            note: event.note,
            action: event.action,
        }
    }

    fn failure(failure: old::Failure) -> current::Failure {
        current::Failure {
            reason: failure.reason,
            message: failure.message,
        }
    }

    fn api_kind(kind: old::ApiKind) -> current::ApiKind {
        current::ApiKind {
            group: kind.group,
            version: kind.version,
            kind: kind.kind,
            plural: kind.plural,
            scope: match kind.scope {
                old::Scope::Namespaced => current::Scope::Namespaced,
                old::Scope::Cluster => current::Scope::Cluster,
            },
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_trigger_reaches_a_0_1_component_as_itself_but_read_changed_as_resync() {
            use current::Trigger as T;
            let cases = [
                (T::ObjectChanged, old::Trigger::ObjectChanged),
                (T::ChildChanged, old::Trigger::ChildChanged),
                (T::ReadChanged, old::Trigger::Resync),
                (T::Requeue, old::Trigger::Requeue),
                (T::Retry, old::Trigger::Retry),
                (T::Resync, old::Trigger::Resync),
                (T::ModuleChanged, old::Trigger::ModuleChanged),
                (T::Manual, old::Trigger::Manual),
            ];
            for (now, then) in cases {
                assert_eq!(trigger(now), then, "{now:?}");
            }
        }

        #[test]
        fn a_request_goes_down_whole() {
            let request = current::Request {
                object: r#"{"kind":"Misbehave"}"#.into(),
                children: vec!["{}".into(), r#"{"kind":"ConfigMap"}"#.into()],
                settings: Some(r#"{"a":1}"#.into()),
                trigger: current::Trigger::ReadChanged,
                attempt: 3,
            };
            assert_eq!(
                self::request(&request),
                old::Request {
                    object: request.object.clone(),
                    children: request.children.clone(),
                    settings: request.settings.clone(),
                    trigger: old::Trigger::Resync,
                    attempt: 3,
                }
            );
        }

        fn old_event(event_type: old::EventType) -> old::Event {
            old::Event {
                event_type,
                reason: "Made".into(),
                note: "made it".into(),
                action: "Reconcile".into(),
            }
        }

        fn current_event(event_type: current::EventType) -> current::Event {
            current::Event {
                event_type,
                reason: "Made".into(),
                note: "made it".into(),
                action: "Reconcile".into(),
            }
        }

        #[test]
        fn responses_come_up_whole() {
            let answered = old::Response {
                children: vec![r#"{"kind":"ConfigMap"}"#.into()],
                status: Some(r#"{"phase":"Done"}"#.into()),
                requeue_after_ms: Some(1500),
                events: vec![
                    old_event(old::EventType::Normal),
                    old_event(old::EventType::Warning),
                ],
            };
            assert_eq!(
                response(answered),
                current::Response {
                    children: vec![r#"{"kind":"ConfigMap"}"#.into()],
                    status: Some(r#"{"phase":"Done"}"#.into()),
                    requeue_after_ms: Some(1500),
                    events: vec![
                        current_event(current::EventType::Normal),
                        current_event(current::EventType::Warning),
                    ],
                }
            );
            let pending = old::FinalizeResponse {
                done: false,
                requeue_after_ms: Some(250),
                events: vec![old_event(old::EventType::Warning)],
            };
            assert_eq!(
                finalize_response(pending),
                current::FinalizeResponse {
                    done: false,
                    requeue_after_ms: Some(250),
                    events: vec![current_event(current::EventType::Warning)],
                }
            );
        }

        #[test]
        fn errors_keep_their_kind_and_words() {
            let failure = |reason: &str| old::Failure {
                reason: reason.into(),
                message: format!("{reason} because"),
            };
            let expected = |reason: &str| current::Failure {
                reason: reason.into(),
                message: format!("{reason} because"),
            };
            assert_eq!(
                reconcile_error(old::ReconcileError::Retryable(failure("Later"))),
                current::ReconcileError::Retryable(expected("Later"))
            );
            assert_eq!(
                reconcile_error(old::ReconcileError::Permanent(failure("Never"))),
                current::ReconcileError::Permanent(expected("Never"))
            );
        }

        #[test]
        fn module_info_comes_up_whole() {
            let kind = |name: &str, scope| old::ApiKind {
                group: "tests.bosun.dev".into(),
                version: "v1".into(),
                kind: name.into(),
                plural: format!("{}s", name.to_lowercase()),
                scope,
            };
            let expected = |name: &str, scope| current::ApiKind {
                group: "tests.bosun.dev".into(),
                version: "v1".into(),
                kind: name.into(),
                plural: format!("{}s", name.to_lowercase()),
                scope,
            };
            let info = old::ModuleInfo {
                name: "old".into(),
                version: "1.2.3".into(),
                primary: kind("Primary", old::Scope::Namespaced),
                owns: vec![kind("Child", old::Scope::Namespaced)],
                reads: vec![kind("Node", old::Scope::Cluster)],
                finalizer: Some("tests.bosun.dev/hold".into()),
                http_origins: vec!["https://api.example".into()],
            };
            assert_eq!(
                module_info(info),
                current::ModuleInfo {
                    name: "old".into(),
                    version: "1.2.3".into(),
                    primary: expected("Primary", current::Scope::Namespaced),
                    owns: vec![expected("Child", current::Scope::Namespaced)],
                    reads: vec![expected("Node", current::Scope::Cluster)],
                    finalizer: Some("tests.bosun.dev/hold".into()),
                    http_origins: vec!["https://api.example".into()],
                }
            );
        }

        #[test]
        fn log_levels_keep_their_severity() {
            use old_host::LogLevel as L;
            let cases = [
                (L::Trace, current::LogLevel::Trace),
                (L::Debug, current::LogLevel::Debug),
                (L::Info, current::LogLevel::Info),
                (L::Warn, current::LogLevel::Warn),
                (L::Error, current::LogLevel::Error),
            ];
            for (then, now) in cases {
                assert_eq!(log_level(then), now);
            }
        }
    }
}
