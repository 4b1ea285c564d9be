//! `cairn k8s controller`: the reconcilers of cairn's custom resources.

pub mod schedule;
