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
    }
}

fn render(file: &str, policy: Option<PathBuf>) -> ExitCode {
    let policy = match policy {
        Some(path) => match Policy::load(&path) {
            Ok(p) => p,
            Err(e) => return fail(&e.to_string()),
        },
        None => Policy::default(),
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
