//! The `safeapp` binary: exit codes, and what goes to stdout and stderr.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn safeapp(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_safeapp"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn safeapp");
    let mut input = child.stdin.take().expect("stdin");
    // The binary may exit before reading (e.g. a bad policy): a broken pipe is fine.
    let _ = input.write_all(stdin.unwrap_or("").as_bytes());
    drop(input);
    child.wait_with_output().expect("wait")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const VALID: &str = "apiVersion: safeapp.dev/v1alpha1\nkind: SafeApp\nmetadata: {name: web, namespace: shop}\nspec:\n  image: registry.example.com/web:1.0.0\n  ports: [{name: http, port: 8080}]\n  healthCheck: {path: /health}\n";

// `render` of a sample prints every object and nothing on stderr.
#[test]
fn render_sample_succeeds() {
    let out = safeapp(&["render", "-f", "config/samples/backend-app.yaml"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for kind in [
        "kind: LimitRange",
        "kind: Deployment",
        "kind: Service",
        "kind: PodDisruptionBudget",
    ] {
        assert!(stdout.contains(kind), "missing {kind}");
    }
    assert!(text(&out.stderr).is_empty());
}

// `-f -` reads standard input; several documents render in order.
#[test]
fn render_from_stdin_multi_document() {
    let two = format!("{VALID}---\n{}", VALID.replace("name: web,", "name: api,"));
    let out = safeapp(&["render", "-f", "-"], Some(&two));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("kind: Deployment").count(), 2);
    assert_eq!(
        stdout.matches("kind: LimitRange").count(),
        1,
        "one LimitRange per namespace"
    );
    // The output is itself valid multi-document YAML.
    let docs: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(&stdout)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .collect();
    // LimitRange, then per app Deployment, Service, PDB and NetworkPolicy.
    assert_eq!(docs.len(), 9);
    assert_eq!(stdout.matches("kind: NetworkPolicy").count(), 2);
}

// Invalid input: every problem on its own line on stderr with its path, exit 1, no stdout.
#[test]
fn invalid_input_reports_each_problem() {
    let bad = VALID.replace("web:1.0.0", "web:latest").replace(
        "healthCheck: {path: /health}",
        "healthCheck: {path: /health}\n  replicas: -1\n  tier: 'a b'",
    );
    let out = safeapp(&["render", "-f", "-"], Some(&bad));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let stderr = text(&out.stderr);
    for path in ["spec.image:", "spec.replicas:", "spec.tier:"] {
        assert_eq!(
            stderr.lines().filter(|l| l.contains(path)).count(),
            1,
            "{path} in {stderr}"
        );
    }
}

// Unknown fields are named one by one.
#[test]
fn unknown_fields_are_named() {
    let bad = VALID.replace("ports:", "replica: 3\n  ports:").replace(
        "{name: http, port: 8080}",
        "{name: http, port: 8080, nmae: x}",
    );
    let out = safeapp(&["render", "-f", "-"], Some(&bad));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("spec.replica: unknown field"), "{stderr}");
    assert!(
        stderr.contains("spec.ports[0].nmae: unknown field"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

// A missing file, a non-SafeApp document and broken YAML are clear errors, exit 1.
#[test]
fn unreadable_and_foreign_input() {
    let out = safeapp(&["render", "-f", "does-not-exist.yaml"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("does-not-exist.yaml"));

    let out = safeapp(
        &["render", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is not a SafeApp"));

    let out = safeapp(&["render", "-f", "-"], Some("spec: [unclosed\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not valid YAML"));
    assert!(out.stdout.is_empty());

    let out = safeapp(&["render", "-f", "-"], Some(""));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no SafeApp"));
}

// `--policy` applies, and a bad policy stops with a message naming the key.
#[test]
fn policy_flag() {
    let dir = std::env::temp_dir().join(format!("safeapp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let good = dir.join("good.yaml");
    std::fs::write(
        &good,
        "defaults:\n  preStopSleepSeconds: 11\n  terminationGracePeriodSeconds: 40\n",
    )
    .expect("write");
    let out = safeapp(
        &[
            "render",
            "-f",
            "-",
            "--policy",
            good.to_str().expect("utf8"),
        ],
        Some(VALID),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("seconds: 11"));
    assert!(text(&out.stdout).contains("terminationGracePeriodSeconds: 40"));

    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "defaults:\n  resources:\n    limits: {cpu: lots, memory: 1Gi}\n",
    )
    .expect("write");
    let out = safeapp(
        &["render", "-f", "-", "--policy", bad.to_str().expect("utf8")],
        Some(VALID),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("defaults.resources.limits.cpu"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

// Resources outside the namespace limits render with a warning on stderr.
#[test]
fn out_of_range_is_a_warning() {
    let big = VALID.replace(
        "healthCheck: {path: /health}",
        "healthCheck: {path: /health}\n  resources: {requests: {cpu: '8'}, limits: {cpu: '8'}}",
    );
    let out = safeapp(&["render", "-f", "-"], Some(&big));
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("warning:"));
    assert!(text(&out.stderr).contains("spec.resources.limits.cpu"));
}

// `crd` prints both checked-in CRDs as one stream; `--kind` prints one.
#[test]
fn crd_command() {
    let read = |f: &str| {
        std::fs::read_to_string(format!("{}/crds/{f}", env!("CARGO_MANIFEST_DIR"))).expect("crd")
    };
    let out = safeapp(&["crd"], None);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        format!("{}---\n{}", read("safeapp.yaml"), read("safejob.yaml"))
    );
    for kind in ["safeapp", "safejob"] {
        let out = safeapp(&["crd", "--kind", kind], None);
        assert!(out.status.success());
        assert_eq!(text(&out.stdout), read(&format!("{kind}.yaml")), "{kind}");
    }
}

// Garbage input never crashes the binary (exit 1, never a panic's 101).
#[test]
fn garbage_never_panics() {
    for input in [
        "\u{0}\u{1}",
        "- - -",
        "apiVersion: safeapp.dev/v1alpha1\nkind: SafeApp\nspec: 3\n",
        "---\n---\n",
        "{{{{",
    ] {
        let out = safeapp(&["render", "-f", "-"], Some(input));
        assert_eq!(
            out.status.code(),
            Some(1),
            "input {input:?}: {}",
            text(&out.stderr)
        );
    }
}

/// A kubeconfig whose API server refuses connections: enough for `safeapp run` to start
/// (the client connects lazily) and keep retrying its watches.
fn unreachable_kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters: [{name: x, cluster: {server: 'http://127.0.0.1:9'}}]\n\
         contexts: [{name: x, context: {cluster: x, user: x, namespace: default}}]\nusers: [{name: x, user: {}}]\n",
    )
    .expect("kubeconfig");
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn start_run(dir: &std::path::Path, port: u16) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_safeapp"))
        .args([
            "run",
            "--leader-elect=false",
            "--log-format=json",
            "--metrics-addr",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .env("KUBECONFIG", unreachable_kubeconfig(dir))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn safeapp run")
}

fn wait_healthy(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !http_get(port, "/healthz").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
        assert!(
            std::time::Instant::now() < deadline,
            "/healthz never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn signal(child: &std::process::Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait_exit(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("safeapp run did not exit within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

// `safeapp run` serves /healthz and /metrics, logs JSON, and on SIGTERM stops and exits 0.
#[test]
fn run_serves_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("safeapp-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let port = free_port();
    let mut child = start_run(&dir, port);
    wait_healthy(port);
    let metrics = http_get(port, "/metrics").expect("metrics");
    assert!(metrics.contains("safeapp_leader 1"), "{metrics}");
    assert!(
        http_get(port, "/readyz")
            .expect("readyz")
            .starts_with("HTTP/1.1 503"),
        "not synced: the API is unreachable"
    );
    signal(&child, "-TERM");
    let status = wait_exit(&mut child, std::time::Duration::from_secs(15));
    assert_eq!(status.code(), Some(0));
    let mut logs = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut logs).expect("logs");
    let first = logs.lines().next().expect("a log line");
    let parsed: serde_json::Value =
        serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert!(
        parsed.get("level").is_some() && parsed.get("message").is_some(),
        "{first}"
    );
}

// A second signal exits at once, without waiting for anything.
#[test]
fn second_signal_exits_at_once() {
    let dir = std::env::temp_dir().join(format!("safeapp-run2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let port = free_port();
    let mut child = start_run(&dir, port);
    wait_healthy(port);
    signal(&child, "-TERM");
    signal(&child, "-TERM");
    let status = wait_exit(&mut child, std::time::Duration::from_secs(5));
    assert!(status.code().is_some(), "exited, not killed");
}

// A bad policy file stops `safeapp run` before it touches the cluster: message, exit 1.
#[test]
fn run_refuses_a_bad_policy() {
    let dir = std::env::temp_dir().join(format!("safeapp-run3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, "defaults:\n  terminationGracePeriodSeconds: 1\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_safeapp"))
        .args(["run", "--leader-elect=false", "--policy"])
        .arg(&policy)
        .env("KUBECONFIG", unreachable_kubeconfig(&dir))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("defaults.terminationGracePeriodSeconds"),
        "{}",
        text(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_safeapp"))
        .args(["run", "--policy", "/nonexistent/policy.yaml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/policy.yaml"));
}

// `render` refuses a guardrail escape the way the operator does: one line per problem
// with its field path, exit 1, nothing on stdout.
#[test]
fn render_refuses_guardrail_escapes() {
    let escape = format!(
        "{VALID}  securityProfile: none\n  priorityClassName: system-node-critical\n  service: {{type: NodePort}}\n  volumes: [{{name: n, nfs: {{server: 10.0.0.1, path: /}}}}]\n"
    );
    let out = safeapp(&["render", "-f", "-"], Some(&escape));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    for path in [
        "<stdin>: document 1 (shop/web): spec.securityProfile: ",
        "<stdin>: document 1 (shop/web): spec.priorityClassName: ",
        "<stdin>: document 1 (shop/web): spec.service.type: ",
        "<stdin>: document 1 (shop/web): spec.volumes[0].nfs: ",
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with(path)),
            "{path} missing in {stderr}"
        );
    }
    assert!(stderr.contains("4 problem(s)"), "{stderr}");
}

// `diff` exits 2 on an error (1 would mean "changes", as with kubectl diff): here no
// cluster can be reached.
#[test]
fn diff_without_a_cluster_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_safeapp"))
        .args(["diff", "-f", "config/samples/backend-app.yaml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("error: "),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

// A reader that stops early (`safeapp crd | head -1`, a render of many apps piped into
// `head`) ends the output quietly: exit 0, no panic, nothing on stderr.
#[test]
fn closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    for args in [&["crd"][..], &["crd", "--kind", "safejob"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_safeapp"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("first line");
        // The reader goes away with more than a pipe buffer still to write.
        assert!(first.starts_with("apiVersion"), "{first}");
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
        assert_eq!(text(&out.stderr), "", "{args:?}");
    }
}
