//! herald's schema, as an ordered list of sea-orm migrations.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_event_log;
mod m20261123_000002_drafts_and_pending_orders;
mod m20261123_000003_jobs;
mod m20261123_000004_cashier;
mod m20261201_000005_hardening;
mod m20261201_000006_idempotency;
mod m20261201_000007_cluster;
mod m20261205_000008_timers_and_reads;
mod m20261205_000009_durable_cancel;
mod m20261205_000010_receipts;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_event_log::Migration),
            Box::new(m20261123_000002_drafts_and_pending_orders::Migration),
            Box::new(m20261123_000003_jobs::Migration),
            Box::new(m20261123_000004_cashier::Migration),
            Box::new(m20261201_000005_hardening::Migration),
            Box::new(m20261201_000006_idempotency::Migration),
            Box::new(m20261201_000007_cluster::Migration),
            Box::new(m20261205_000008_timers_and_reads::Migration),
            Box::new(m20261205_000009_durable_cancel::Migration),
            Box::new(m20261205_000010_receipts::Migration),
        ]
    }
}
