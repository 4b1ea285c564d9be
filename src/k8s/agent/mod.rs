//! `cairn k8s agent`: the node agent that backs up and restores pod
//! volume files (one per node, a DaemonSet). [`volumes`] decides which
//! volumes and where their files are; [`locate`] opens them.

pub mod locate;
pub mod volumes;
