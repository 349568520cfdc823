//! What every request handler can reach: settings, the database, the token
//! keys and the actors' addresses. Shared by every HTTP worker; the one
//! thing a worker has of its own, its publisher, is app data beside it
//! (`web::Data<Addr<Publisher>>`, see `startup`).

use std::sync::Arc;

use actix::Addr;

use crate::{
    bus::node::Node,
    core::drain::Inflight,
    core::{auth::TokenKeys, config::Settings},
    http::{
        middleware::{origins::Origins, rate_limit::Limits},
        sampler::Sampler,
    },
    sessions::{presence::Presence, registry::Registry},
    store::db::Db,
    writers::{
        crud::{DraftsActor, OrdersActor, VenueActor},
        jobs::JobSupervisor,
    },
};

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub keys: TokenKeys,
    pub epoch: Arc<str>,
    pub registry: Addr<Registry>,
    /// Who is connected, on every node.
    pub presence: Addr<Presence>,
    pub drafts: Addr<DraftsActor>,
    pub orders: Addr<OrdersActor>,
    pub jobs: Addr<JobSupervisor>,
    pub venues: Addr<VenueActor>,
    /// This process among the nodes on its database.
    pub node: Node,
    /// Browser origins allowed for CORS and socket upgrades.
    pub origins: Origins,
    pub limits: Limits,
    /// The admin view's history of the last minutes.
    pub sampler: Addr<Sampler>,
    /// Writes read from sockets and not yet committed (see `shutdown`).
    pub writes: Inflight,
}
