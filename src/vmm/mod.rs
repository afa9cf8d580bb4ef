//! The per-VM process: one KVM virtual machine per `novakvm vmm` process.

pub mod cli;
