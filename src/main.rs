//! `safeapp`: the command line. Wiring only; the logic lives in the library.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use safeapp::policy::Policy;

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
    /// Run the controller against the current kubeconfig context or in-cluster config.
    Run {
        /// Operator policy file (defaults built in when omitted).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Watch only this namespace (default: all namespaces).
        #[arg(long)]
        namespace: Option<String>,
        /// Seconds between periodic resyncs of each SafeApp.
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        resync_seconds: u64,
        /// Reconciles allowed to run at once.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
        concurrency: u16,
    },
    /// Print the SafeApp CustomResourceDefinition as YAML.
    Crd,
    /// Print the objects SafeApps produce, with no cluster (multi-document YAML).
    Render {
        /// SafeApp manifest file, or '-' for standard input.
        #[arg(short = 'f', long = "filename", value_name = "FILE|-")]
        file: String,
        /// Operator policy file (defaults built in when omitted).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match safeapp::crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("cannot serialize the CRD: {e}")),
        },
        Command::Render { file, policy } => render(&file, policy),
        Command::Run {
            policy,
            namespace,
            resync_seconds,
            concurrency,
        } => run(policy, namespace, resync_seconds, concurrency),
    }
}

fn load_policy(path: Option<PathBuf>) -> Result<Policy, String> {
    match path {
        Some(path) => Policy::load(&path).map_err(|e| e.to_string()),
        None => Ok(Policy::default()),
    }
}

fn run(
    policy: Option<PathBuf>,
    namespace: Option<String>,
    resync_seconds: u64,
    concurrency: u16,
) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // A bad policy stops the operator before it touches the cluster.
    let policy = match load_policy(policy) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async move {
        let client = match kube::Client::try_default().await {
            Ok(c) => c,
            Err(e) => return fail(&format!("cannot connect to Kubernetes: {e}")),
        };
        let config = safeapp::controller::RunConfig {
            policy,
            resync: std::time::Duration::from_secs(resync_seconds),
            concurrency,
            namespace,
        };
        let metrics = std::sync::Arc::new(safeapp::metrics::Metrics::default());
        safeapp::controller::run(client, config, metrics).await;
        ExitCode::SUCCESS
    })
}

fn render(file: &str, policy: Option<PathBuf>) -> ExitCode {
    let policy = match load_policy(policy) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let text = if file == "-" {
        let mut s = String::new();
        match std::io::stdin().read_to_string(&mut s) {
            Ok(_) => s,
            Err(e) => return fail(&format!("cannot read standard input: {e}")),
        }
    } else {
        match std::fs::read_to_string(file) {
            Ok(s) => s,
            Err(e) => return fail(&format!("cannot read {file}: {e}")),
        }
    };
    let origin = if file == "-" { "<stdin>" } else { file };
    match safeapp::manifest::render_manifest(&text, &policy) {
        Ok(rendered) => match safeapp::render::to_yaml(&rendered.objects) {
            Ok(yaml) => {
                for w in &rendered.warnings {
                    eprintln!("warning: {origin}: {w}");
                }
                print!("{yaml}");
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

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
