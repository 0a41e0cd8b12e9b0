//! SafeApp: a Kubernetes operator that turns one short `SafeApp` object into a
//! Deployment, Service, PodDisruptionBudget, HorizontalPodAutoscaler and namespace
//! LimitRange carrying production practices by default.
//!
//! The pipeline reads top to bottom: [`validate`] (pure) → [`render`] (pure) → apply and
//! status (the controller). The first two take no client.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod apiserver;
pub mod controller;
pub mod crd;
pub mod diff;
pub mod digest;
pub mod leader;
pub mod manifest;
pub mod metrics;
pub mod names;
pub mod operator;
pub mod policy;
pub mod prometheus;
pub mod quantity;
pub mod ratelimit;
pub mod render;
pub mod telemetry;
pub mod validate;
pub mod yaml;
