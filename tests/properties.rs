//! Property tests: arbitrary specs never panic anywhere in the pipeline, and every object
//! rendered from a valid spec has valid names and label values.

use std::collections::BTreeMap;

use proptest::prelude::*;
use safeapp::api::SafeApp;
use safeapp::names;
use safeapp::policy::Policy;
use safeapp::render::{self, Object};
use safeapp::validate::validate;
use serde_json::{Value, json};

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop::option::weighted(0.4, s).boxed()
}

fn label_like() -> BoxedStrategy<String> {
    prop_oneof![8 => "[a-z0-9]([a-z0-9.-]{0,8}[a-z0-9])?", 1 => "[A-Za-z0-9._ /-]{0,70}", 1 => ".{0,10}"].boxed()
}

fn int_or_string() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => (1i32..5).prop_map(|n| json!(n)),
        2 => "[1-9]0?%".prop_map(|s| json!(s)),
        1 => (-2i32..1).prop_map(|n| json!(n)),
        1 => "(-?[0-9]{1,3}%?|[a-z]{1,4})".prop_map(|s| json!(s)),
    ]
    .boxed()
}

fn quantity() -> BoxedStrategy<String> {
    prop_oneof![8 => "[1-9][0-9]{0,2}(m|Mi)", 1 => "[0-9]{1,4}(m|Mi|Gi|k|M|G|e3)?", 1 => "[0-9.a-zA-Z-]{0,6}"].boxed()
}

prop_compose! {
    fn port()(
        name in prop_oneof![8 => "[a-z]{1,8}", 1 => "[a-z0-9-]{0,17}"],
        port in prop_oneof![8 => 1i32..65536, 1 => -5i32..70000],
        sp in opt(prop_oneof![8 => 1i32..65536, 1 => -5i32..70000]),
        udp in prop::bool::weighted(0.2),
    ) -> Value {
        let mut p = json!({"name": name, "port": port});
        if let Some(sp) = sp { p["servicePort"] = json!(sp); }
        if udp { p["protocol"] = json!("UDP"); }
        p
    }
}

prop_compose! {
    fn spec_value()(
        image in prop_oneof![
            8 => "[a-z]{1,6}(/[a-z]{1,6})?:[a-z0-9][a-z0-9._-]{0,8}",
            1 => "[a-z]{1,6}(/[a-z]{1,6})?(:[a-zA-Z0-9._-]{0,10})?(@sha256:[0-9a-f]{64})?",
            1 => ".{0,20}",
        ],
        replicas in opt(prop_oneof![8 => 0i32..10, 1 => -3i32..0]),
        ports in opt(prop::collection::vec(port(), 0..3)),
        hc in opt((opt("/?[a-z]{0,6}"), opt(prop_oneof![(0i32..70000).prop_map(|n| json!(n)), "[a-z]{0,5}".prop_map(|s| json!(s))]))),
        readiness in opt(prop_oneof![Just(json!({"exec": {"command": ["true"]}})), Just(json!({"periodSeconds": 3})), Just(json!({"tcpSocket": {"port": "http"}}))]),
        liveness in opt(Just(json!({"httpGet": {"path": "/", "port": 8080}, "successThreshold": 1}))),
        (surge, unavailable) in (opt(int_or_string()), opt(int_or_string())),
        autoscaling in opt((opt(prop_oneof![8 => 1i32..3, 1 => -1i32..6]), prop_oneof![8 => 3i32..6, 1 => -1i32..6], opt(0i32..120), opt(0i32..120))),
        pdb in opt((opt(int_or_string()), opt(int_or_string()))),
        (sleep, grace) in (opt(prop_oneof![8 => 0i64..20, 1 => -2i64..60]), opt(prop_oneof![8 => 21i64..60, 1 => -2i64..60])),
        dims in prop::collection::vec(opt(label_like()), 7),
        labels in opt(prop::collection::btree_map(prop_oneof![8 => "[a-z]{1,8}", 1 => "[a-z./A-Z!]{0,12}"], label_like(), 0..3)),
        annotations in opt(prop::collection::btree_map(prop_oneof![8 => "[a-z]{1,8}", 1 => "[a-z./]{0,12}"], ".{0,8}", 0..3)),
        requests in opt(prop::collection::btree_map(prop_oneof![Just("cpu".to_string()), Just("memory".to_string())], quantity(), 0..3)),
        limits in opt(prop::collection::btree_map(prop_oneof![Just("cpu".to_string()), Just("memory".to_string())], quantity(), 0..3)),
        profile in opt(prop_oneof![Just("restricted"), Just("baseline"), Just("none")]),
        run_as in opt(prop_oneof![8 => 1i64..20000, 1 => -1i64..1]),
        host_path in prop::bool::weighted(0.1),
        depends in opt(prop::collection::vec(prop_oneof![8 => "[a-z]{1,8}", 1 => "[a-z,]{0,8}"], 0..3)),
    ) -> Value {
        let mut s = json!({"image": image});
        let set = |s: &mut Value, k: &str, v: Option<Value>| if let Some(v) = v { s[k] = v; };
        set(&mut s, "replicas", replicas.map(|r| json!(r)));
        set(&mut s, "ports", ports.map(Value::Array));
        set(&mut s, "healthCheck", hc.map(|(path, port)| {
            let mut h = json!({});
            if let Some(p) = path { h["path"] = json!(p); }
            if let Some(p) = port { h["port"] = p; }
            h
        }));
        let mut probes = json!({});
        if let Some(r) = readiness { probes["readiness"] = r; }
        if let Some(l) = liveness { probes["liveness"] = l; }
        if probes.as_object().is_some_and(|o| !o.is_empty()) { s["probes"] = probes; }
        let mut rollout = json!({});
        if let Some(v) = surge { rollout["maxSurge"] = v; }
        if let Some(v) = unavailable { rollout["maxUnavailable"] = v; }
        s["rollout"] = rollout;
        set(&mut s, "autoscaling", autoscaling.map(|(min, max, cpu, mem)| {
            let mut a = json!({"maxReplicas": max});
            if let Some(v) = min { a["minReplicas"] = json!(v); }
            if let Some(v) = cpu { a["targetCPUUtilizationPercentage"] = json!(v); }
            if let Some(v) = mem { a["targetMemoryUtilizationPercentage"] = json!(v); }
            a
        }));
        set(&mut s, "disruptionBudget", pdb.map(|(min, max)| {
            let mut b = json!({});
            if let Some(v) = min { b["minAvailable"] = v; }
            if let Some(v) = max { b["maxUnavailable"] = v; }
            b
        }));
        let mut sd = json!({});
        if let Some(v) = sleep { sd["preStopSleepSeconds"] = json!(v); }
        if let Some(v) = grace { sd["terminationGracePeriodSeconds"] = json!(v); }
        s["shutdown"] = sd;
        for (key, v) in ["tier", "environment", "track", "tenant", "shard", "component", "partOf"].iter().zip(dims) {
            set(&mut s, key, v.map(|v| json!(v)));
        }
        set(&mut s, "labels", labels.map(|l| json!(l)));
        set(&mut s, "annotations", annotations.map(|a| json!(a)));
        let mut res = json!({});
        if let Some(r) = requests { res["requests"] = json!(r); }
        if let Some(l) = limits { res["limits"] = json!(l); }
        s["resources"] = res;
        set(&mut s, "securityProfile", profile.map(|p| json!(p)));
        set(&mut s, "runAsUser", run_as.map(|u| json!(u)));
        set(&mut s, "dependsOn", depends.map(|d| json!(d)));
        if host_path {
            s["volumes"] = json!([{"name": "data", "hostPath": {"path": "/"}}]);
        }
        s
    }
}

fn assert_labels_valid(labels: Option<&BTreeMap<String, String>>, what: &str) {
    for (k, v) in labels.into_iter().flatten() {
        assert!(
            names::check_qualified_name(k).is_ok(),
            "{what}: bad label key {k:?}"
        );
        assert!(
            names::check_label_value(v).is_ok(),
            "{what}: bad label value {k}={v:?}"
        );
    }
}

fn check_object(o: &Object) {
    let (meta, is_service) = match o {
        Object::Deployment(d) => {
            let spec = d.spec.as_ref().expect("spec");
            assert_labels_valid(
                spec.template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.as_ref()),
                "pod template",
            );
            assert_labels_valid(spec.selector.match_labels.as_ref(), "selector");
            for c in &spec.template.spec.as_ref().expect("pod").containers {
                assert!(
                    names::check_dns1123_label(&c.name).is_ok(),
                    "container {:?}",
                    c.name
                );
            }
            (&d.metadata, false)
        }
        Object::StatefulSet(s) => {
            let spec = s.spec.as_ref().expect("spec");
            assert_labels_valid(
                spec.template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.as_ref()),
                "pod template",
            );
            assert_labels_valid(spec.selector.match_labels.as_ref(), "selector");
            (&s.metadata, false)
        }
        Object::Service(s) => (&s.metadata, true),
        Object::PodDisruptionBudget(p) => (&p.metadata, false),
        Object::HorizontalPodAutoscaler(h) => (&h.metadata, false),
        Object::LimitRange(l) => (&l.metadata, false),
        Object::ResourceQuota(r) => (&r.metadata, false),
        Object::NetworkPolicy(n) => (&n.metadata, false),
        Object::HTTPRoute(r) => (&r.metadata, false),
        Object::Ingress(i) => (&i.metadata, false),
        Object::PodMonitor(m) => (&m.metadata, false),
        Object::CronJob(c) => (&c.metadata, false),
        Object::Job(j) => (&j.metadata, false),
    };
    let name = meta.name.as_deref().expect("name");
    if is_service {
        assert!(
            names::check_dns1035_label(name).is_ok(),
            "service name {name:?}"
        );
    } else {
        assert!(names::check_dns1123_label(name).is_ok(), "name {name:?}");
    }
    assert_labels_valid(meta.labels.as_ref(), name);
    for k in meta.annotations.iter().flat_map(|a| a.keys()) {
        assert!(
            names::check_qualified_name(k).is_ok(),
            "annotation key {k:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    // Arbitrary specs never panic, and whatever validates renders to valid objects.
    #[test]
    fn arbitrary_specs_never_panic_and_render_valid_objects(
        name in prop_oneof!["[a-z]([a-z0-9-]{0,70}[a-z0-9])?", ".{0,12}"],
        spec in spec_value(),
    ) {
        let obj = json!({
            "apiVersion": "safeapp.dev/v1alpha1",
            "kind": "SafeApp",
            "metadata": {"name": name, "namespace": "team-a", "uid": "u-1"},
            "spec": spec,
        });
        let Ok(app) = serde_json::from_value::<SafeApp>(obj) else { return Ok(()) };
        let policy = Policy::default();
        if let Ok(v) = validate(&app, &policy) {
            let objects = render::render_all(std::slice::from_ref(&v), &policy);
            for o in &objects {
                check_object(o);
            }
            prop_assert!(render::to_yaml(&objects).is_ok());
            let _ = render::out_of_range(&v.pod, &policy);
        }
    }

    // Any text given to `render` yields objects or problems, never a panic.
    #[test]
    fn arbitrary_manifest_text_never_panics(text in ".{0,200}") {
        let _ = safeapp::manifest::render_manifest(&text, &Policy::default());
        let yaml = format!("apiVersion: safeapp.dev/v1alpha1\nkind: SafeApp\nmetadata: {{name: x}}\nspec: {text}\n");
        let _ = safeapp::manifest::render_manifest(&yaml, &Policy::default());
    }

    // Sanitised label values are always valid label values.
    #[test]
    fn sanitized_labels_are_valid(s in ".{0,100}") {
        prop_assert!(names::check_label_value(&names::sanitize_label_value(&s)).is_ok());
    }
}

// The generator is not vacuous: a fair share of arbitrary specs validates and renders.
#[test]
fn generator_produces_valid_specs() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut valid = 0;
    for _ in 0..400 {
        let spec = spec_value().new_tree(&mut runner).expect("tree").current();
        let obj = json!({"apiVersion": "safeapp.dev/v1alpha1", "kind": "SafeApp", "metadata": {"name": "web"}, "spec": spec});
        if let Ok(app) = serde_json::from_value::<SafeApp>(obj)
            && validate(&app, &Policy::default()).is_ok()
        {
            valid += 1;
        }
    }
    eprintln!("valid specs: {valid}/400");
    assert!(
        valid >= 20,
        "only {valid} of 400 generated specs were valid: the property test would test little"
    );
}

fn json_tree() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<String>().prop_map(Value::String),
        "[0-9a-zA-Z.:_/+-]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    // The YAML writer's output reads back as exactly the tree it was given.
    #[test]
    fn yaml_writer_roundtrips(v in json_tree()) {
        let mut out = String::new();
        safeapp::yaml::write_document(&mut out, &v).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: Value = serde_yaml_ng::from_str(&out).map_err(|e| TestCaseError::fail(format!("{e}\n{out}")))?;
        prop_assert_eq!(back, v, "YAML was:\n{}", out);
    }
}
