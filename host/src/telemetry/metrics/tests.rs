use super::*;

/// The rendered line for one series, e.g. `name{labels} value`.
fn has_line(rendered: &str, line: &str) -> bool {
    rendered.lines().any(|l| l == line)
}

#[track_caller]
fn assert_line(rendered: &str, line: &str) {
    assert!(
        has_line(rendered, line),
        "expected the line\n  {line}\nin\n{rendered}"
    );
}

#[test]
fn reconciles_are_counted_by_controller_and_result() {
    let metrics = Metrics::new();
    metrics.reconciled("cnat", ReconcileResult::Success, Duration::from_millis(3));
    metrics.reconciled("cnat", ReconcileResult::Success, Duration::from_millis(7));
    metrics.reconciled("cnat", ReconcileResult::RequeueAfter, Duration::ZERO);
    metrics.reconciled("webapp", ReconcileResult::Requeue, Duration::ZERO);
    let out = metrics.render();

    assert_line(
        &out,
        r#"controller_runtime_reconcile_total{controller="cnat",result="success"} 2"#,
    );
    assert_line(
        &out,
        r#"controller_runtime_reconcile_total{controller="cnat",result="requeue_after"} 1"#,
    );
    assert_line(
        &out,
        r#"controller_runtime_reconcile_total{controller="webapp",result="requeue"} 1"#,
    );
    assert_line(&out, "# TYPE controller_runtime_reconcile counter");
    assert_line(
        &out,
        r#"controller_runtime_reconcile_time_seconds_count{controller="cnat"} 3"#,
    );
    // 3 ms and 0 fall in the first bucket (5 ms), 7 ms in the second.
    assert_line(
        &out,
        r#"controller_runtime_reconcile_time_seconds_bucket{le="0.005",controller="cnat"} 2"#,
    );
    assert_line(
        &out,
        r#"controller_runtime_reconcile_time_seconds_bucket{le="60.0",controller="cnat"} 3"#,
    );
    assert!(out.ends_with("# EOF\n"), "{out}");
}

#[test]
fn an_error_counts_as_a_reconcile_and_as_an_error() {
    let metrics = Metrics::new();
    metrics.reconciled("cnat", ReconcileResult::Error, Duration::ZERO);
    let out = metrics.render();
    assert_line(
        &out,
        r#"controller_runtime_reconcile_total{controller="cnat",result="error"} 1"#,
    );
    assert_line(
        &out,
        r#"controller_runtime_reconcile_errors_total{controller="cnat"} 1"#,
    );
}

#[test]
fn a_started_controller_reports_zeroes_before_its_first_reconcile() {
    let metrics = Metrics::new();
    metrics.set_max_concurrent("cnat", 4);
    let out = metrics.render();
    assert_line(
        &out,
        r#"controller_runtime_max_concurrent_reconciles{controller="cnat"} 4"#,
    );
    for result in ["success", "error", "requeue", "requeue_after"] {
        assert_line(
            &out,
            &format!(
                r#"controller_runtime_reconcile_total{{controller="cnat",result="{result}"}} 0"#
            ),
        );
    }
    assert_line(
        &out,
        r#"controller_runtime_reconcile_errors_total{controller="cnat"} 0"#,
    );
    assert_line(
        &out,
        r#"controller_runtime_active_workers{controller="cnat"} 0"#,
    );
}

#[test]
fn the_queue_observer_records_workqueue_series_named_for_the_controller() {
    let metrics = Metrics::new();
    let observer = metrics.queue_observer("cnat");
    observer.added();
    observer.added();
    observer.retried();
    observer.depth(5);
    observer.depth(3);
    observer.waited(Duration::from_millis(2));
    observer.worked(Duration::from_millis(40));
    observer.worked(Duration::from_millis(50));
    observer.active(2);
    let out = metrics.render();

    assert_line(&out, r#"workqueue_adds_total{name="cnat"} 2"#);
    assert_line(&out, r#"workqueue_retries_total{name="cnat"} 1"#);
    assert_line(&out, r#"workqueue_depth{name="cnat"} 3"#);
    assert_line(
        &out,
        r#"workqueue_queue_duration_seconds_count{name="cnat"} 1"#,
    );
    assert_line(
        &out,
        r#"workqueue_work_duration_seconds_count{name="cnat"} 2"#,
    );
    assert_line(
        &out,
        r#"controller_runtime_active_workers{controller="cnat"} 2"#,
    );
}

#[test]
fn observers_for_one_controller_share_its_series() {
    let metrics = Metrics::new();
    metrics.queue_observer("cnat").added();
    metrics.queue_observer("cnat").added();
    metrics.queue_observer("webapp").added();
    let out = metrics.render();
    assert_line(&out, r#"workqueue_adds_total{name="cnat"} 2"#);
    assert_line(&out, r#"workqueue_adds_total{name="webapp"} 1"#);
}

#[test]
fn guest_calls_and_traps_are_recorded_per_module() {
    let metrics = Metrics::new();
    metrics.guest_call("cnat", GuestCall::Reconcile, Duration::from_micros(250));
    metrics.guest_call("cnat", GuestCall::Finalize, Duration::from_micros(250));
    metrics.guest_trap("cnat", "Timeout");
    metrics.guest_trap("cnat", "Timeout");
    metrics.guest_trap("cnat", "InvalidOutput");
    let out = metrics.render();
    assert_line(
        &out,
        r#"bosun_guest_call_duration_seconds_count{module="cnat",call="reconcile"} 1"#,
    );
    assert_line(
        &out,
        r#"bosun_guest_call_duration_seconds_count{module="cnat",call="finalize"} 1"#,
    );
    assert_line(
        &out,
        r#"bosun_guest_traps_total{module="cnat",kind="Timeout"} 2"#,
    );
    assert_line(
        &out,
        r#"bosun_guest_traps_total{module="cnat",kind="InvalidOutput"} 1"#,
    );
}

#[test]
fn a_reloaded_module_replaces_its_info_series() {
    let metrics = Metrics::new();
    metrics.module_loaded("cnat", "0.1.0", "sha256:aaa", false, Duration::from_secs(2));
    metrics.module_loaded(
        "cnat",
        "0.2.0",
        "sha256:bbb",
        true,
        Duration::from_millis(4),
    );
    metrics.module_loaded(
        "webapp",
        "1.0.0",
        "sha256:ccc",
        true,
        Duration::from_millis(4),
    );
    let out = metrics.render();

    assert_line(
        &out,
        r#"bosun_module_info{module="cnat",version="0.2.0",digest="sha256:bbb"} 1"#,
    );
    assert!(!out.contains(r#"version="0.1.0""#), "{out}");
    assert_line(
        &out,
        r#"bosun_module_info{module="webapp",version="1.0.0",digest="sha256:ccc"} 1"#,
    );
    assert_line(
        &out,
        r#"bosun_module_load_duration_seconds_count{module="cnat",source="compiled"} 1"#,
    );
    assert_line(
        &out,
        r#"bosun_module_load_duration_seconds_count{module="cnat",source="cache"} 1"#,
    );

    metrics.module_unloaded("cnat");
    let out = metrics.render();
    assert!(!out.contains(r#"bosun_module_info{module="cnat""#), "{out}");
    assert_line(
        &out,
        r#"bosun_module_info{module="webapp",version="1.0.0",digest="sha256:ccc"} 1"#,
    );
}

#[test]
fn nothing_but_eof_is_rendered_before_anything_is_recorded() {
    // prometheus-client leaves out families without series.
    assert_eq!(Metrics::new().render(), "# EOF\n");
}

#[test]
fn every_family_is_rendered_under_its_exposed_name() {
    let metrics = Metrics::new();
    metrics.set_max_concurrent("cnat", 1);
    metrics.reconciled("cnat", ReconcileResult::Success, Duration::ZERO);
    let observer = metrics.queue_observer("cnat");
    observer.waited(Duration::ZERO);
    observer.worked(Duration::ZERO);
    metrics.guest_call("cnat", GuestCall::Reconcile, Duration::ZERO);
    metrics.guest_trap("cnat", "Panic");
    metrics.module_loaded("cnat", "0.1.0", "sha256:aaa", true, Duration::ZERO);
    let config_maps = crate::meta::Kind::for_test("", "ConfigMap", crate::meta::Scope::Namespaced);
    metrics
        .cache_observer()
        .cached(&config_maps, Some("shop"), 3);
    metrics
        .cache_observer()
        .skipped(&config_maps, Some("shop"), 1);
    metrics
        .cache_observer()
        .undecodable(&config_maps, Some("shop"), &too_deep("deep"));
    metrics.set_shard_buckets(21);
    metrics.set_shard_replicas(3);
    let out = metrics.render();
    assert_line(&out, "bosun_shard_buckets_held 21");
    assert_line(&out, "bosun_shard_replicas 3");
    let types: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    // OpenMetrics names a counter family without `_total`; its samples
    // carry the suffix (checked in the tests above).
    assert_eq!(
        types,
        [
            "controller_runtime_reconcile counter",
            "controller_runtime_reconcile_errors counter",
            "controller_runtime_reconcile_time_seconds histogram",
            "controller_runtime_max_concurrent_reconciles gauge",
            "controller_runtime_active_workers gauge",
            "workqueue_depth gauge",
            "workqueue_adds counter",
            "workqueue_retries counter",
            "workqueue_queue_duration_seconds histogram",
            "workqueue_work_duration_seconds histogram",
            "bosun_guest_call_duration_seconds histogram",
            "bosun_guest_traps counter",
            "bosun_module_load_duration_seconds histogram",
            "bosun_module_info gauge",
            "bosun_shard_buckets_held gauge",
            "bosun_shard_replicas gauge",
            "bosun_cached_objects gauge",
            "bosun_skipped_objects gauge",
            "bosun_undecodable_objects counter",
            "bosun_tracked_reads gauge",
            "bosun_read_triggers counter",
            "bosun_tracked_reads_overflows counter",
        ]
    );
}

#[test]
fn caches_and_read_tracking_are_measured() {
    let metrics = Metrics::new();
    let config_maps = crate::meta::Kind::for_test("", "ConfigMap", crate::meta::Scope::Namespaced);
    let observer = metrics.cache_observer();
    observer.cached(&config_maps, Some("shop"), 3);
    observer.cached(&config_maps, None, 7);
    metrics.set_max_concurrent("mirror", 4);
    metrics.set_tracked_reads("mirror", 12);
    metrics.read_triggered("mirror");
    metrics.tracked_reads_overflowed("mirror");
    let out = metrics.render();
    assert_line(
        &out,
        r#"bosun_cached_objects{kind="ConfigMap.v1",namespace="shop"} 3"#,
    );
    assert_line(
        &out,
        r#"bosun_cached_objects{kind="ConfigMap.v1",namespace=""} 7"#,
    );
    assert_line(&out, r#"bosun_tracked_reads{module="mirror"} 12"#);
    assert_line(&out, r#"bosun_read_triggers_total{module="mirror"} 1"#);
    assert_line(
        &out,
        r#"bosun_tracked_reads_overflows_total{module="mirror"} 1"#,
    );

    observer.stopped(&config_maps, Some("shop"));
    metrics.module_unloaded("mirror");
    let out = metrics.render();
    assert!(!out.contains(r#"namespace="shop""#), "{out}");
    assert_line(&out, r#"bosun_tracked_reads{module="mirror"} 0"#);
}

fn too_deep(name: &str) -> crate::informers::SkippedObject {
    crate::informers::SkippedObject {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        reason: crate::informers::Undecodable::TooDeep { limit: 100 },
    }
}

#[test]
fn skipped_objects_are_measured_per_watch_and_counted_per_reason() {
    let metrics = Metrics::new();
    let kind = crate::meta::Kind::for_test(
        "tests.bosun.dev",
        "Misbehave",
        crate::meta::Scope::Namespaced,
    );
    let observer = metrics.cache_observer();
    observer.skipped(&kind, Some("shop"), 0);
    assert!(
        !metrics.render().contains("bosun_skipped_objects{"),
        "a watch that never skipped anything has no series"
    );

    observer.skipped(&kind, Some("shop"), 2);
    observer.undecodable(&kind, Some("shop"), &too_deep("a"));
    observer.undecodable(&kind, Some("shop"), &too_deep("b"));
    let out = metrics.render();
    assert_line(
        &out,
        r#"bosun_skipped_objects{kind="Misbehave.tests.bosun.dev/v1",namespace="shop"} 2"#,
    );
    assert_line(
        &out,
        r#"bosun_undecodable_objects_total{kind="Misbehave.tests.bosun.dev/v1",reason="too_deep"} 2"#,
    );

    observer.skipped(&kind, Some("shop"), 0);
    assert_line(
        &metrics.render(),
        r#"bosun_skipped_objects{kind="Misbehave.tests.bosun.dev/v1",namespace="shop"} 0"#,
    );
    observer.stopped(&kind, Some("shop"));
    assert!(!metrics.render().contains("bosun_skipped_objects{"));
}

#[test]
fn label_values_are_escaped() {
    let metrics = Metrics::new();
    metrics.guest_trap("odd\"name", "Trap");
    let out = metrics.render();
    assert_line(
        &out,
        r#"bosun_guest_traps_total{module="odd\"name",kind="Trap"} 1"#,
    );
}
