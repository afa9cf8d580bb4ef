//! The per-VM process: one KVM virtual machine per `novakvm vmm` process.
//!
//! - [`spec`]: the JSON VM spec and its validation (before any KVM call).
//! - [`builder`]: assembles a VM from a spec in one function.
//! - [`kvm`], [`memory`], [`vcpu`], [`boot`], [`devices`]: the parts.
//! - [`vm`]: runtime control shared by vCPU threads and the control socket ([`api`]).
//! - [`state`]: lifecycle state machine and exit codes.
//! - [`cli`]: `novakvm vmm` entry point.
//! - [`jail`]: seccomp filters per thread class and privilege dropping.

pub mod affinity;
pub mod api;
pub mod boot;
pub mod builder;
pub mod cli;
pub mod devices;
pub mod jail;
pub mod kvm;
pub mod memory;
pub mod spec;
pub mod state;
pub mod vcpu;
pub mod vm;
