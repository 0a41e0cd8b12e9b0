//! A real Prometheus for the canary analysis tests: Debian's `prometheus` package
//! (`apt-get install prometheus`; `.ci/run` installs it), started once per test binary
//! on 127.0.0.1 over a TSDB backfilled with `promtool tsdb create-blocks-from
//! openmetrics` from the series the tests name. The samples run from 10 minutes before
//! the start to 40 minutes after, every 15 s, so an instant query at any time of the
//! run finds them. The server goes when the test process does.
//!
//! Without the binaries the tests say so and pass, unless `CI` is set: there they must
//! run.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The series every test can query: `(name{labels}, value)`.
pub const SERIES: &[(&str, f64)] = &[
    (r#"canary_error_ratio{app="good"}"#, 0.001),
    (r#"canary_error_ratio{app="bad"}"#, 0.2),
    (r#"canary_requests{app="good"}"#, 500.0),
    (r#"canary_requests{app="quiet"}"#, 3.0),
    (r#"canary_latency_seconds{app="good",le="0.5"}"#, 0.12),
    (r#"canary_latency_seconds{app="good",le="1"}"#, 0.3),
];

/// The server's address (`http://127.0.0.1:PORT`), or None when Prometheus is not
/// installed here (and `CI` is not set).
pub fn address() -> Option<&'static str> {
    static SERVER: OnceLock<Option<String>> = OnceLock::new();
    SERVER.get_or_init(start).as_deref()
}

fn installed(bin: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn start() -> Option<String> {
    if !installed("prometheus") || !installed("promtool") {
        assert!(
            std::env::var_os("CI").is_none(),
            "prometheus and promtool must be installed in CI (.ci/run: apt-get install prometheus)"
        );
        eprintln!(
            "SKIPPED: prometheus/promtool not installed (apt-get install prometheus): the real-Prometheus canary tests did not run"
        );
        return None;
    }
    let dir: PathBuf =
        std::env::temp_dir().join(format!("safeapp-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let mut om = String::new();
    let mut typed = std::collections::BTreeSet::new();
    for (series, _) in SERIES {
        let name = series.split('{').next().unwrap_or(series);
        if typed.insert(name) {
            om.push_str(&format!("# TYPE {name} gauge\n"));
        }
    }
    // OpenMetrics wants each metric family's samples together, in time order.
    for name in &typed {
        for t in (now - 600..now + 2_400).step_by(15) {
            for (series, value) in SERIES
                .iter()
                .filter(|(s, _)| s.split('{').next() == Some(*name))
            {
                om.push_str(&format!("{series} {value} {t}\n"));
            }
        }
    }
    om.push_str("# EOF\n");
    let input = dir.join("series.om");
    std::fs::write(&input, om).expect("write openmetrics");
    let data = dir.join("data");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&data)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  evaluation_interval: 1m\n").expect("config");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    // Tied to this process: the server stops when the tests end.
    let script = format!(
        "prometheus --config.file={} --storage.tsdb.path={} --web.listen-address={listen} > {} 2>&1 & p=$!; while kill -0 {} 2>/dev/null; do sleep 1; done; kill $p",
        config.display(),
        data.display(),
        dir.join("prometheus.log").display(),
        std::process::id()
    );
    // Not waited for: the watchdog shell outlives this process on purpose (it stops the
    // server when the tests end) and is reaped by init.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &script])
        .spawn()
        .expect("start prometheus");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if ready(&listen) {
            return Some(format!("http://{listen}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    panic!("prometheus did not become ready on {listen}:\n{log}");
}

/// `GET /-/ready` answers 200.
fn ready(listen: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(listen) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /-/ready HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}
