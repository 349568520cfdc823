//! The actors that own the writes.

pub mod crud;
pub mod erp;
pub mod jobs;
pub mod pruner;
pub mod publisher;
