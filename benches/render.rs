//! Rendering benchmarks: `cargo bench --bench render` (figures in BENCHMARKS.md).
//!
//! - `sample/<file>`: one sample manifest from config/samples, end to end as
//!   `safeapp render` does it: parse, validate, render, serialize to YAML.
//! - `sample_render/<file>`: the same sample already parsed: validate, render, YAML.
//! - `one_app/render_to_yaml`: render + YAML of one already validated SafeApp.
//! - `batch/10000_apps`: 10,000 distinct SafeApps over 50 namespaces, validated,
//!   rendered with `render_all` and serialized, measured as one iteration.
//!   The target is under 50 µs per SafeApp (10,000 in under half a second).
//! - `batch_stages/*`: the same batch split into validate, render_all and to_yaml.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use safeapp::api::SafeApp;
use safeapp::manifest;
use safeapp::policy::Policy;
use safeapp::render;
use safeapp::validate::{self, ValidatedApp, ValidatedJob};

const BATCH: usize = 10_000;
const NAMESPACES: usize = 50;

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/samples")
}

/// The sample manifests (not the kustomization), sorted by file name.
fn samples() -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(samples_dir())
        .expect("read config/samples")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&p).expect("read sample");
            (name, text)
        })
        .collect()
}

fn backend_app() -> SafeApp {
    let text =
        std::fs::read_to_string(samples_dir().join("backend-app.yaml")).expect("read backend");
    manifest::parse(&text)
        .expect("backend sample parses")
        .into_iter()
        .next()
        .expect("backend sample has one SafeApp")
}

/// 10,000 distinct SafeApps: the backend sample, renamed `app-00000`.. and spread
/// over `ns-00`..`ns-49`.
fn many_apps(n: usize) -> Vec<SafeApp> {
    let base = backend_app();
    (0..n)
        .map(|i| {
            let mut app = base.clone();
            app.metadata.name = Some(format!("app-{i:05}"));
            app.metadata.namespace = Some(format!("ns-{:02}", i % NAMESPACES));
            app
        })
        .collect()
}

fn bench_samples(c: &mut Criterion) {
    let policy = Policy::default();
    let mut group = c.benchmark_group("sample");
    for (name, text) in samples() {
        // Fail loudly before measuring if a sample does not render.
        let rendered = manifest::render_manifest(&text, &policy).expect("sample renders");
        render::to_yaml(&rendered.objects).expect("sample serializes");
        group.bench_function(&name, |b| {
            b.iter(|| {
                let rendered = manifest::render_manifest(black_box(&text), black_box(&policy))
                    .expect("sample renders");
                render::to_yaml(&rendered.objects).expect("sample serializes")
            })
        });
    }
    group.finish();
}

/// Each sample already parsed: validate + render + YAML, the per-SafeApp (or SafeJob)
/// work the 50 µs target is about (parsing the input YAML is measured in `sample/*`).
fn bench_sample_render(c: &mut Criterion) {
    let policy = Policy::default();
    let mut group = c.benchmark_group("sample_render");
    for (name, text) in samples() {
        let (mut apps, mut jobs) = (Vec::new(), Vec::new());
        for doc in manifest::parse_documents(&text).expect("sample parses") {
            match doc {
                manifest::Document::App(app) => apps.push(*app),
                manifest::Document::Job(job) => jobs.push(*job),
            }
        }
        group.bench_function(&name, |b| {
            b.iter(|| {
                let validated: Vec<ValidatedApp> = black_box(&apps)
                    .iter()
                    .map(|a| validate::validate(a, black_box(&policy)).expect("valid"))
                    .collect();
                let validated_jobs: Vec<ValidatedJob> = black_box(&jobs)
                    .iter()
                    .map(|j| validate::validate_job(j, black_box(&policy)).expect("valid"))
                    .collect();
                let objects = render::render_stream(&validated, &validated_jobs, &policy);
                render::to_yaml(&objects).expect("sample serializes")
            })
        });
    }
    group.finish();
}

fn bench_one_app(c: &mut Criterion) {
    let policy = Policy::default();
    let app = validate::validate(&backend_app(), &policy).expect("backend sample validates");
    let apps = [app];
    let mut group = c.benchmark_group("one_app");
    group.bench_function("render_to_yaml", |b| {
        b.iter(|| {
            let objects = render::render_all(black_box(&apps), black_box(&policy));
            render::to_yaml(&objects).expect("serializes")
        })
    });
    // The same output through serde_yaml_ng, the parsing crate: is src/yaml.rs still worth it?
    group.bench_function("render_to_yaml_with_serde_yaml_ng", |b| {
        b.iter(|| {
            let objects = render::render_all(black_box(&apps), black_box(&policy));
            let mut out = String::new();
            for o in &objects {
                out.push_str("---\n");
                out.push_str(&serde_yaml_ng::to_string(&o.to_json()).expect("serializes"));
            }
            out
        })
    });
    group.finish();
}

fn bench_batch(c: &mut Criterion) {
    let policy = Policy::default();
    let apps = many_apps(BATCH);
    let mut group = c.benchmark_group("batch");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("10000_apps", |b| {
        b.iter(|| {
            let validated: Vec<ValidatedApp> = black_box(&apps)
                .iter()
                .map(|app| validate::validate(app, &policy).expect("app validates"))
                .collect();
            let objects = render::render_all(&validated, &policy);
            render::to_yaml(&objects).expect("serializes")
        })
    });
    group.finish();

    // The same batch, stage by stage, to show which part dominates.
    let validated: Vec<ValidatedApp> = apps
        .iter()
        .map(|app| validate::validate(app, &policy).expect("app validates"))
        .collect();
    let objects = render::render_all(&validated, &policy);
    let mut group = c.benchmark_group("batch_stages");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("validate_10000", |b| {
        b.iter(|| {
            black_box(&apps)
                .iter()
                .map(|app| validate::validate(app, &policy).expect("app validates"))
                .collect::<Vec<ValidatedApp>>()
        })
    });
    group.bench_function("render_all_10000", |b| {
        b.iter(|| render::render_all(black_box(&validated), &policy))
    });
    group.bench_function("to_yaml_10000", |b| {
        b.iter(|| render::to_yaml(black_box(&objects)).expect("serializes"))
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_samples,
    bench_sample_render,
    bench_one_app,
    bench_batch
);
criterion_main!(benches);
