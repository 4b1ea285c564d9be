//! `cairn k8s controller`: the reconcilers of cairn's custom resources.

pub mod http;
pub mod metrics;
pub mod schedule;
