//! `safeapp`: the command line. Wiring only; the logic lives in the library.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use safeapp::controller::RunConfig;
use safeapp::operator::RunOptions;
use safeapp::policy::Policy;
use safeapp::telemetry::LogFormat;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "safeapp",
    version,
    about = "SafeApp: production practices for every Kubernetes app"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator against the current kubeconfig context or in-cluster config.
    Run(RunArgs),
    /// Print the CustomResourceDefinitions (SafeApp, then SafeJob) as YAML.
    Crd {
        /// Only this kind's CRD.
        #[arg(long, value_enum)]
        kind: Option<CrdKind>,
    },
    /// Print the objects SafeApps produce, with no cluster (multi-document YAML).
    Render {
        /// SafeApp manifest file, or '-' for standard input.
        #[arg(short = 'f', long = "filename", value_name = "FILE|-")]
        file: String,
        /// Operator policy file (defaults built in when omitted).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Show what applying SafeApps would change in the current kubeconfig context
    /// (server-side dry run: nothing is written). Exit 0: no change; 1: changes; 2: error.
    Diff {
        /// SafeApp manifest file, or '-' for standard input.
        #[arg(short = 'f', long = "filename", value_name = "FILE|-")]
        file: String,
        /// Operator policy file, as the operator runs with (defaults when omitted).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Count Secret data in the config hash, as an operator run with --watch-secrets.
        #[arg(long, default_value_t = false)]
        watch_secrets: bool,
        /// Field manager of the SafeApps' own apply (who really applies them: kubectl,
        /// argocd-controller...), so fields the new manifest drops show as removed.
        #[arg(long, default_value = safeapp::diff::DIFF_MANAGER)]
        field_manager: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CrdKind {
    Safeapp,
    Safejob,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Operator policy file (defaults built in when omitted); a bad file stops the start.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long)]
    namespace: Option<String>,
    /// Reconcile only SafeApps matching this label selector (e.g. shard=a), to split a
    /// large cluster between several operators.
    #[arg(long)]
    selector: Option<String>,
    /// Seconds between periodic resyncs of each SafeApp.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    resync_seconds: u64,
    /// Reconciles allowed to run at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Address of the /healthz, /readyz and /metrics server.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
    /// Log format: text for people, json for log collectors (RUST_LOG filters).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Elect a leader over a Lease, so several replicas can run (false for local runs).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the Lease (default: POD_NAMESPACE, else "default").
    #[arg(long)]
    lease_namespace: Option<String>,
    /// Roll pods when referenced Secrets change too (needs read access to Secrets: the
    /// kustomize component config/components/secret-rollout grants it and sets this).
    #[arg(long, default_value_t = false)]
    watch_secrets: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "safeapp-operator-leader")]
    lease_name: String,
    /// Seconds the Lease stays valid after a renewal: the longest a standby waits when
    /// the leader dies (renewed a third of it, at most 5 s, before expiry).
    #[arg(long, default_value_t = safeapp::leader::LEASE_DURATION_SECONDS, value_parser = clap::value_parser!(u64).range(2..=300))]
    lease_duration_seconds: u64,
    /// Sustained API requests per second (client-side limit; the Lease is not counted).
    #[arg(long, default_value_t = safeapp::ratelimit::DEFAULT_QPS)]
    qps: f64,
    /// API requests that may go at once after a quiet period.
    #[arg(long, default_value_t = safeapp::ratelimit::DEFAULT_BURST, value_parser = clap::value_parser!(u32).range(1..))]
    burst: u32,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { kind } => match crd_yaml(kind) {
            Ok(yaml) => {
                emit(&yaml);
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("cannot serialize the CRD: {e}")),
        },
        Command::Render { file, policy } => render(&file, policy),
        Command::Diff {
            file,
            policy,
            watch_secrets,
            field_manager,
        } => diff(&file, policy, watch_secrets, &field_manager),
        Command::Run(args) => run(args),
    }
}

fn crd_yaml(kind: Option<CrdKind>) -> Result<String, serde_yaml_ng::Error> {
    use safeapp::crd;
    match kind {
        None => crd::crd_yaml(),
        Some(CrdKind::Safeapp) => crd::crd_yaml_of(&crd::safeapp_crd()),
        Some(CrdKind::Safejob) => crd::crd_yaml_of(&crd::safejob_crd()),
    }
}

fn load_policy(path: Option<PathBuf>) -> Result<Policy, String> {
    match path {
        Some(path) => Policy::load(&path).map_err(|e| e.to_string()),
        None => Ok(Policy::default()),
    }
}

fn run(args: RunArgs) -> ExitCode {
    safeapp::telemetry::init(args.log_format);
    // A bad policy stops the operator before it touches the cluster.
    let policy = match load_policy(args.policy) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    // In a cluster the Deployment passes its own namespace (config/manager).
    let own_namespace = std::env::var("POD_NAMESPACE").ok();
    let policy = match &own_namespace {
        Some(ns) => policy.for_operator_namespace(ns),
        None => policy,
    };
    if args
        .selector
        .as_deref()
        .is_some_and(|s| s.trim().is_empty())
    {
        return fail("--selector is empty");
    }
    if !(args.qps.is_finite() && args.qps > 0.0) {
        return fail("--qps must be a positive number");
    }
    let options = RunOptions {
        controller: RunConfig {
            policy,
            resync: Duration::from_secs(args.resync_seconds),
            concurrency: args.concurrency,
            namespace: args.namespace,
            selector: args.selector,
            watch_secrets: args.watch_secrets,
        },
        metrics_addr: args.metrics_addr,
        leader_elect: args.leader_elect,
        lease_namespace: args
            .lease_namespace
            .or(own_namespace)
            .unwrap_or_else(|| "default".into()),
        lease_name: args.lease_name,
        lease: safeapp::leader::LeaseTiming::with_duration(args.lease_duration_seconds),
        identity: safeapp::leader::identity(),
        qps: args.qps,
        burst: args.burst,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(safeapp::operator::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

/// The text of `file`, or of standard input for `-`.
fn read_input(file: &str) -> Result<String, String> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))
    }
}

/// Exit code of `diff` on an error (1 means "changes", as for `kubectl diff`).
const DIFF_ERROR: u8 = 2;

fn diff(file: &str, policy: Option<PathBuf>, watch_secrets: bool, manager: &str) -> ExitCode {
    let failed = |message: &str| {
        eprintln!("error: {message}");
        ExitCode::from(DIFF_ERROR)
    };
    let policy = match load_policy(policy) {
        Ok(p) => p,
        Err(e) => return failed(&e),
    };
    let text = match read_input(file) {
        Ok(t) => t,
        Err(e) => return failed(&e),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return failed(&format!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("cannot connect with the current kubeconfig context: {e}"))?;
        safeapp::diff::diff_as(&client, &text, &policy, watch_secrets, manager)
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(diffs) => {
            for d in &diffs {
                emit(&d.to_string());
            }
            if safeapp::diff::any_change(&diffs) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => failed(&e),
    }
}

fn render(file: &str, policy: Option<PathBuf>) -> ExitCode {
    let policy = match load_policy(policy) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let text = match read_input(file) {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let origin = if file == "-" { "<stdin>" } else { file };
    match safeapp::manifest::render_manifest(&text, &policy) {
        Ok(rendered) => match safeapp::render::to_yaml(&rendered.objects) {
            Ok(yaml) => {
                for w in &rendered.warnings {
                    eprintln!("warning: {origin}: {w}");
                }
                emit(&yaml);
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("cannot serialize the output: {e}")),
        },
        Err(problems) => {
            for p in &problems {
                eprintln!("{origin}: {p}");
            }
            eprintln!("{origin}: {} problem(s); nothing rendered", problems.len());
            ExitCode::FAILURE
        }
    }
}

/// Writes to stdout. A reader that went away (`safeapp crd | head -1`) ends the output
/// quietly: `print!` would panic on the broken pipe (Rust ignores SIGPIPE).
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: cannot write the output: {e}");
        }
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
