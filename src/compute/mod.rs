//! The compute agent: what nova-compute's manager does.

pub mod service;
pub mod state;
