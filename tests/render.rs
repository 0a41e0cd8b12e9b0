//! The renderer: snapshots of every sample's output, and the practices of SAFEAPP.md §2
//! asserted one by one.

mod common;

use k8s_openapi::api::apps::v1::{DeploymentSpec, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use safeapp::manifest;
use safeapp::policy::Policy;
use safeapp::render::{self, Resources};
use safeapp::validate::{ValidatedApp, validate};

const SAMPLES: &[&str] = &[
    "backend-app",
    "frontend-app",
    "autoscaled-api",
    "queue-worker",
    "canary-app",
    // A stateful app: a StatefulSet with claims, a headless Service.
    "orders-db",
    // A canary release behind a Gateway (its stable pods carry `track: stable`).
    "storefront",
    // SafeJobs: a scheduled one (a CronJob) and a one-off one (a Job).
    "nightly-report",
    "db-migration",
];

fn sample_text(name: &str) -> String {
    let path = format!("{}/config/samples/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).expect("sample")
}

fn rendered_yaml(text: &str, policy: &Policy) -> String {
    let out = manifest::render_manifest(text, policy).expect("valid sample");
    render::to_yaml(&out.objects).expect("yaml")
}

// Every sample renders to the reviewed output (snapshots in tests/snapshots/).
#[test]
fn sample_snapshots() {
    for name in SAMPLES {
        let yaml = rendered_yaml(&sample_text(name), &Policy::default());
        insta::assert_snapshot!(*name, yaml);
    }
}

// Same input, byte-identical output.
#[test]
fn output_is_deterministic() {
    for name in SAMPLES {
        let text = sample_text(name);
        assert_eq!(
            rendered_yaml(&text, &Policy::default()),
            rendered_yaml(&text, &Policy::default())
        );
    }
}

const MINIMAL: &str = r#"
apiVersion: safeapp.dev/v1alpha1
kind: SafeApp
metadata: {name: backend-app, namespace: eks-work, uid: 0b4e1c9a-1111-2222-3333-444455556666}
spec:
  image: registry.example.com/k8sbook/backend-app:1.0.0
  ports: [{name: http, port: 8080}]
  healthCheck: {path: /health}
"#;

fn validated(extra: &str) -> ValidatedApp {
    // Guardrails are tested in tests/guardrails.rs; here every setting may render.
    validate(
        &common::app_with(MINIMAL, extra),
        &common::permissive_policy(),
    )
    .expect("valid")
}

fn resources(extra: &str) -> Resources {
    render::render(&validated(extra), &Policy::default())
}

fn rolling_update(d: &DeploymentSpec) -> &RollingUpdateDeployment {
    d.strategy
        .as_ref()
        .unwrap()
        .rolling_update
        .as_ref()
        .unwrap()
}

fn container(r: &Resources) -> Container {
    r.workload
        .as_deployment()
        .expect("a Deployment")
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .clone()
}

// The minimal object gets every production default of the contract.
#[test]
fn minimal_gets_every_practice() {
    let r = resources("");
    let d = r
        .workload
        .as_deployment()
        .expect("a Deployment")
        .spec
        .as_ref()
        .unwrap();
    assert_eq!(d.replicas, Some(2));
    let ru = rolling_update(d);
    assert_eq!(ru.max_unavailable, Some(IntOrString::Int(0)));
    assert_eq!(ru.max_surge, Some(IntOrString::String("25%".into())));
    assert_eq!(d.min_ready_seconds, Some(5));
    assert_eq!(d.progress_deadline_seconds, Some(600));
    assert_eq!(d.revision_history_limit, Some(10));
    let sel = d.selector.match_labels.as_ref().unwrap();
    assert_eq!(sel.len(), 2, "selector is the two stable labels only");
    let pod = d.template.spec.as_ref().unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(30));
    assert_eq!(pod.automount_service_account_token, Some(false));
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(
        (
            psc.run_as_non_root,
            psc.run_as_user,
            psc.run_as_group,
            psc.fs_group
        ),
        (Some(true), Some(10001), Some(10001), Some(10001))
    );
    assert_eq!(
        psc.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    assert_eq!(pod.topology_spread_constraints.as_ref().unwrap().len(), 2);
    assert!(
        pod.topology_spread_constraints
            .as_ref()
            .unwrap()
            .iter()
            .all(|t| t.when_unsatisfiable == "ScheduleAnyway")
    );

    let c = container(&r);
    assert_eq!(c.name, "backend-app");
    assert_eq!(
        c.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );
    let rp = c.readiness_probe.as_ref().unwrap();
    let lp = c.liveness_probe.as_ref().unwrap();
    assert_eq!(
        rp.http_get.as_ref().unwrap().path.as_deref(),
        Some("/health")
    );
    assert_eq!(
        lp.http_get.as_ref().unwrap().path.as_deref(),
        Some("/health")
    );
    assert!(
        lp.initial_delay_seconds > rp.initial_delay_seconds,
        "liveness starts later"
    );
    assert!(
        lp.failure_threshold > rp.failure_threshold,
        "liveness is looser"
    );
    let sleep = c
        .lifecycle
        .as_ref()
        .unwrap()
        .pre_stop
        .as_ref()
        .unwrap()
        .sleep
        .as_ref()
        .unwrap();
    assert_eq!(sleep.seconds, 5);
    let res = c.resources.as_ref().unwrap();
    for key in ["cpu", "memory"] {
        assert!(res.requests.as_ref().unwrap().contains_key(key));
        assert!(res.limits.as_ref().unwrap().contains_key(key));
    }
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop,
        Some(vec!["ALL".to_string()])
    );
    assert!(
        c.volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.mount_path == "/tmp")
    );
    let env: Vec<&str> = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(&env[..3], ["POD_NAME", "POD_NAMESPACE", "POD_IP"]);

    let svc = r.service.as_ref().expect("service");
    let port = &svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
    assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
    let pdb = r.pdb.spec.as_ref().unwrap();
    assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(pdb.min_available, None);
    assert_eq!(
        pdb.unhealthy_pod_eviction_policy.as_deref(),
        Some("AlwaysAllow")
    );
    assert!(r.hpa.is_none());
    assert!(
        render::namespace_objects("shop", &Policy::default())
            .1
            .is_none()
    );
}

// Every generated object carries the labels and a controller ownerReference to the app.
#[test]
fn labels_and_owner_references() {
    let r = resources(
        "{tier: backend, environment: prod, track: canary, tenant: acme, shard: s1, component: api, partOf: shop, owner: {team: pay, contact: '@pay'}, dependsOn: [db, cache]}",
    );
    let metas = [
        &r.workload.as_deployment().expect("a Deployment").metadata,
        &r.service.as_ref().unwrap().metadata,
        &r.pdb.metadata,
    ];
    for m in metas {
        let l = m.labels.as_ref().unwrap();
        assert_eq!(l["app.kubernetes.io/name"], "backend-app");
        assert_eq!(l["app.kubernetes.io/instance"], "backend-app");
        assert_eq!(l["app.kubernetes.io/version"], "1.0.0");
        assert_eq!(l["app.kubernetes.io/managed-by"], "safeapp-operator");
        assert_eq!(l["app.kubernetes.io/component"], "api");
        assert_eq!(l["app.kubernetes.io/part-of"], "shop");
        for (k, v) in [
            ("tier", "backend"),
            ("environment", "prod"),
            ("track", "canary"),
            ("tenant", "acme"),
            ("shard", "s1"),
        ] {
            assert_eq!(l[k], v);
        }
        let a = m.annotations.as_ref().unwrap();
        assert_eq!(a["safeapp.dev/owner-team"], "pay");
        assert_eq!(a["safeapp.dev/depends-on"], "db,cache");
        let owners = m.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "SafeApp");
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(owners[0].uid, "0b4e1c9a-1111-2222-3333-444455556666");
    }
    let tmpl = r
        .workload
        .as_deployment()
        .expect("a Deployment")
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap();
    assert_eq!(tmpl.labels.as_ref().unwrap()["track"], "canary");
}

// With autoscaling the HPA owns replicas: the Deployment omits them.
#[test]
fn autoscaling_turns_hpa_on() {
    let r = resources("autoscaling: {maxReplicas: 6, targetMemoryUtilizationPercentage: 75}");
    assert_eq!(
        r.workload
            .as_deployment()
            .expect("a Deployment")
            .spec
            .as_ref()
            .unwrap()
            .replicas,
        None
    );
    let hpa = r.hpa.expect("hpa").spec.unwrap();
    assert_eq!(hpa.scale_target_ref.kind, "Deployment");
    assert_eq!(hpa.scale_target_ref.name, "backend-app");
    assert_eq!((hpa.min_replicas, hpa.max_replicas), (Some(2), 6));
    let metrics = hpa.metrics.unwrap();
    assert_eq!(
        metrics.len(),
        1,
        "only the memory target the user asked for"
    );
    assert_eq!(metrics[0].resource.as_ref().unwrap().name, "memory");
    let window = hpa
        .behavior
        .unwrap()
        .scale_down
        .unwrap()
        .stabilization_window_seconds;
    assert_eq!(window, Some(300));
}

// No ports (or service disabled) means no Service; readiness comes from the probes.
#[test]
fn no_service_without_ports() {
    let r = resources(
        "{ports: null, healthCheck: null, probes: {readiness: {exec: {command: [check]}}}}",
    );
    assert!(r.service.is_none());
    let c = container(&r);
    assert!(c.readiness_probe.unwrap().exec.is_some());
    // Liveness derived from readiness: same handler, later and looser.
    let l = c.liveness_probe.unwrap();
    assert!(l.exec.is_some());
    assert_eq!(l.initial_delay_seconds, Some(15));
    assert!(resources("service: {enabled: false}").service.is_none());
}

// Only a liveness probe: readiness reuses its handler with tighter timing.
#[test]
fn readiness_from_liveness() {
    let r = resources(
        "{ports: null, healthCheck: null, probes: {liveness: {exec: {command: [alive]}, periodSeconds: 30}}}",
    );
    let c = container(&r);
    let rp = c.readiness_probe.unwrap();
    assert_eq!(rp.exec.unwrap().command, Some(vec!["alive".to_string()]));
    assert_eq!(rp.period_seconds, Some(5));
    assert_eq!(c.liveness_probe.unwrap().period_seconds, Some(30));
}

// Without a path, healthCheck gives TCP probes on the first port.
#[test]
fn tcp_probe_without_path() {
    let r = resources("healthCheck: null");
    let rp = container(&r).readiness_probe.unwrap();
    assert_eq!(
        rp.tcp_socket.unwrap().port,
        IntOrString::String("http".into())
    );
}

// preStop in Exec mode runs `sh -c "sleep N"`; 0 disables the hook.
#[test]
fn pre_stop_modes() {
    let r = resources("shutdown: {preStopMode: Exec, preStopSleepSeconds: 7}");
    let exec = container(&r)
        .lifecycle
        .unwrap()
        .pre_stop
        .unwrap()
        .exec
        .unwrap();
    assert_eq!(exec.command.unwrap(), ["sh", "-c", "sleep 7"]);
    assert!(
        container(&resources("shutdown: {preStopSleepSeconds: 0}"))
            .lifecycle
            .is_none()
    );
}

// A user value always wins over a default.
#[test]
fn user_values_win() {
    let r = resources(
        "{replicas: 4, rollout: {maxSurge: 1, maxUnavailable: '10%', minReadySeconds: 9, progressDeadlineSeconds: 300, revisionHistoryLimit: 3}, disruptionBudget: {minAvailable: 2}, runAsUser: 20000, runAsGroup: 30000, imagePullPolicy: Always, service: {type: LoadBalancer, annotations: {lb.example.com/internal: 'true'}}, env: [{name: POD_NAME, value: custom}]}",
    );
    let d = r
        .workload
        .as_deployment()
        .expect("a Deployment")
        .spec
        .as_ref()
        .unwrap();
    assert_eq!(d.replicas, Some(4));
    let ru = rolling_update(d);
    assert_eq!(ru.max_surge, Some(IntOrString::Int(1)));
    assert_eq!(ru.max_unavailable, Some(IntOrString::String("10%".into())));
    assert_eq!(
        (
            d.min_ready_seconds,
            d.progress_deadline_seconds,
            d.revision_history_limit
        ),
        (Some(9), Some(300), Some(3))
    );
    let psc = d
        .template
        .spec
        .as_ref()
        .unwrap()
        .security_context
        .as_ref()
        .unwrap();
    assert_eq!(
        (psc.run_as_user, psc.run_as_group),
        (Some(20000), Some(30000))
    );
    let c = container(&r);
    assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
    let pod_name: Vec<_> = c
        .env
        .unwrap()
        .into_iter()
        .filter(|e| e.name == "POD_NAME")
        .collect();
    assert_eq!(pod_name.len(), 1);
    assert_eq!(pod_name[0].value.as_deref(), Some("custom"));
    assert_eq!(
        r.pdb.spec.as_ref().unwrap().min_available,
        Some(IntOrString::Int(2))
    );
    assert_eq!(r.pdb.spec.as_ref().unwrap().max_unavailable, None);
    let svc = r.service.unwrap();
    assert_eq!(
        svc.spec.as_ref().unwrap().type_.as_deref(),
        Some("LoadBalancer")
    );
    assert_eq!(
        svc.metadata.annotations.unwrap()["lb.example.com/internal"],
        "true"
    );
}

// Naming a service account mounts its token; the none profile sets no security context.
#[test]
fn service_account_and_profiles() {
    let r = resources("{serviceAccountName: web-sa, securityProfile: none}");
    let pod = r
        .workload
        .as_deployment()
        .expect("a Deployment")
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .clone()
        .unwrap();
    assert_eq!(pod.automount_service_account_token, None);
    assert_eq!(pod.service_account_name.as_deref(), Some("web-sa"));
    assert!(pod.security_context.is_none());
    assert!(pod.containers[0].security_context.is_none());
    assert!(
        pod.volumes.is_none(),
        "no /tmp volume without a read-only root"
    );
    let b = resources("securityProfile: baseline");
    let pod = b
        .workload
        .as_deployment()
        .expect("a Deployment")
        .spec
        .clone()
        .unwrap()
        .template
        .spec
        .unwrap();
    assert_eq!(
        pod.security_context.unwrap().seccomp_profile.unwrap().type_,
        "RuntimeDefault"
    );
    assert_eq!(
        pod.containers[0]
            .security_context
            .as_ref()
            .unwrap()
            .read_only_root_filesystem,
        None
    );
}

// Init containers get the profile's security context, resources and /tmp.
#[test]
fn init_containers_hardened() {
    let r =
        resources("initContainers: [{name: migrate, image: 'registry.example.com/migrate:1.0'}]");
    let pod = r
        .workload
        .as_deployment()
        .expect("a Deployment")
        .spec
        .clone()
        .unwrap()
        .template
        .spec
        .unwrap();
    let init = &pod.init_containers.unwrap()[0];
    let sc = init.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert!(
        init.resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap()
            .contains_key("memory")
    );
    assert!(
        init.volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.mount_path == "/tmp")
    );
}

// The policy's ResourceQuota is rendered; LimitRange content follows the policy.
#[test]
fn policy_quota_and_limits() {
    let policy = Policy::from_yaml(
        "limitRange:\n  max: {cpu: '2', memory: 4Gi}\nresourceQuota:\n  hard: {requests.cpu: '10'}\n",
        std::path::Path::new("p.yaml"),
    )
    .expect("policy");
    let (lr, rq) = render::namespace_objects("shop", &policy);
    let rq = rq.expect("quota");
    assert_eq!(rq.metadata.name.as_deref(), Some("safeapp-quota"));
    assert_eq!(rq.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(rq.spec.unwrap().hard.unwrap()["requests.cpu"].0, "10");
    let item = &lr.spec.unwrap().limits[0];
    assert_eq!(item.type_, "Container");
    assert_eq!(item.max.as_ref().unwrap()["cpu"].0, "2");
    assert_eq!(item.default.as_ref().unwrap()["memory"].0, "256Mi");
}

// Resources outside the namespace's LimitRange are reported, not silently rendered.
#[test]
fn out_of_range_reported() {
    let v = validated("resources: {requests: {memory: 16Gi}, limits: {memory: 16Gi}}");
    let problems = render::out_of_range(&v.pod, &Policy::default());
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("spec.resources.limits.memory") && p.contains("maximum")),
        "{problems:?}"
    );
    assert!(render::out_of_range(&validated("").pod, &Policy::default()).is_empty());
}

// Many apps of one namespace share one LimitRange; its ownerReferences are the
// controller's (they depend on which SafeApps exist), so a preview shows none.
#[test]
fn shared_limit_range() {
    let mut a = validated("");
    let mut b = validated("");
    b.pod.name = "other".into();
    b.pod.uid = Some("uid-b".into());
    a.pod.uid = Some("uid-a".into());
    let objects = render::render_all(&[a, b], &Policy::default());
    let lrs: Vec<_> = objects
        .iter()
        .filter_map(|o| match o {
            render::Object::LimitRange(lr) => Some(lr),
            _ => None,
        })
        .collect();
    assert_eq!(lrs.len(), 1);
    assert_eq!(lrs[0].metadata.owner_references, None);
    assert_eq!(lrs[0].metadata.name.as_deref(), Some("safeapp-limits"));
}
