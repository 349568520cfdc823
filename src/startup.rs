//! Builds the application (database, hub, bus, writers, sessions' registry,
//! HTTP server) and runs it until a signal asks it to stop.

use std::{
    net::SocketAddr,
    sync::{atomic::AtomicI64, Arc},
    time::Duration,
};

use actix::{Actor, Arbiter};
use actix_server::Server;
use actix_web::web;

use crate::{
    bus::{
        node::{self, Node},
        tailer::{self, Tailer},
        Bus, Links,
    },
    core::{auth::TokenKeys, config::Settings, drain::Inflight, logging},
    http::{
        middleware::{origins::Origins, rate_limit::Limits},
        sampler::Sampler,
        server::{self, AppParts},
        state::AppState,
        tls::{self, Certificates, TlsError},
    },
    hub::{room::RoomConfig, Hub},
    sessions::{presence::Presence, registry::Registry},
    shutdown,
    store::{
        command::DomainError,
        db::{Db, LockError, OpenError, SingleNode},
        secret::{self, SecretError},
    },
    writers::{
        crud::{DraftsActor, OrdersActor, VenueActor},
        erp,
        jobs::{take_over, JobSupervisor, Resume},
        pruner::Pruner,
        publisher::Publishers,
    },
};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the SQLite database {url}: {source}. Check HERALD_DATABASE_URL, and that the file's directory exists and is writable")]
    Sqlite { url: String, source: OpenError },
    /// PostgreSQL: the error names host, port, user and database.
    #[error("{0}")]
    Postgres(#[source] OpenError),
    #[error("migrating the database failed: {0}")]
    Migration(#[source] sea_orm::DbErr),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("recovering interrupted jobs failed: {0}")]
    Recovery(#[source] DomainError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    SingleNode(#[from] LockError),
    #[error("cannot listen for SIGTERM and SIGINT: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot listen on {addr}: {source}. Is another server on that port? Set HERALD_ADDR")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct Application {
    addr: SocketAddr,
    server: Server,
    state: AppState,
    /// Several nodes: stops the tailer's `LISTEN` connection at shutdown.
    tailer: Option<tailer::Stopper>,
    /// SQLite's one-node lock, held until the process ends.
    _single_node: Option<SingleNode>,
    /// SIGTERM and SIGINT, listened for from startup on.
    signals: shutdown::Signals,
}

pub async fn connect_database(settings: &Settings) -> Result<Db, StartupError> {
    let db = Db::connect(&settings.database).await.map_err(|source| {
        match settings.database.is_sqlite() {
            true => StartupError::Sqlite {
                url: logging::redact_url(&settings.database.url),
                source,
            },
            false => StartupError::Postgres(source),
        }
    })?;
    db.migrate().await.map_err(StartupError::Migration)?;
    Ok(db)
}

/// The secret tokens are signed with: explicit, else beside the SQLite file,
/// else (PostgreSQL) in the database, so every node and `herald token` share it.
async fn token_keys(settings: &Settings, db: &Db) -> Result<TokenKeys, StartupError> {
    let secret = match (&settings.jwt_secret, settings.database.is_sqlite()) {
        (Some(secret), _) => secret.as_bytes().to_vec(),
        (None, true) => secret::load_or_create_secret(None, &settings.database)?,
        (None, false) => secret::shared_secret(&db.write)
            .await
            .map_err(StartupError::Migration)?,
    };
    Ok(TokenKeys::new(&secret))
}

/// The hub: its rooms on threads of their own, away from the HTTP workers.
fn start_hub(settings: &Settings, db: &Db, epoch: Arc<str>) -> Hub {
    let config = RoomConfig {
        db: db.clone(),
        epoch,
        buffer_events: settings.buffer_events as usize,
        buffer_ttl: settings.buffer_ttl(),
        retention: settings.retention(),
        heartbeat_secs: settings.heartbeat_secs,
        max_pending: settings.send_queue as usize,
        max_replay: settings.max_replay_events,
    };
    let threads = settings
        .room_threads
        .map(|n| n as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let room_threads: Vec<_> = (0..threads).map(|_| Arbiter::new().handle()).collect();
    log::info!("rooms run on {threads} thread(s) (HERALD_ROOM_THREADS)");
    Hub::start(config, &room_threads)
}

/// Connections the kernel holds for herald before it accepts them.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` with a listen queue of [`LISTEN_BACKLOG`] (capped by the
/// kernel's `net.core.somaxconn`). The standard library's `bind` listens
/// with 128, and actix's own `backlog` setting applies only to sockets it
/// binds itself: in a reconnect storm the kernel then dropped SYNs, which
/// clients retry only after a second.
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)?.into_std()
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        let settings = Arc::new(settings);
        // Bind first: a taken port is reported before anything starts.
        let listener = bind(settings.addr).map_err(|source| StartupError::Bind {
            addr: settings.addr,
            source,
        })?;
        let addr = listener.local_addr().unwrap_or(settings.addr);
        // A bad certificate stops startup before anything else happens.
        let certs = match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => Some(Certificates::load(cert, key)?),
            _ => None,
        };
        let mut db = connect_database(&settings).await?;
        let keys = token_keys(&settings, &db).await?;
        // A second node on one SQLite file stops here, before it serves
        // or touches the epoch (migrations are idempotent).
        let single_node = SingleNode::lock(&settings.database)?;
        let epoch: Arc<str> = Arc::from(db.epoch().await.map_err(StartupError::Migration)?);
        // This process as one node: stamped on what it writes, its heartbeat
        // holds its jobs (several nodes: see `bus`).
        let node_name = settings
            .node_name
            .clone()
            .unwrap_or_else(node::default_name);
        let node = node::register(&db, &node_name, &addr.to_string())
            .await
            .map_err(StartupError::Migration)?;
        db.node = Some(node.id);
        if !db.is_sqlite() {
            log::info!(
                "node {} (id {}) on PostgreSQL: other nodes on this database are heard through it",
                node.name,
                node.id
            );
        }

        let hub = start_hub(&settings, &db, epoch.clone());
        let bus = Bus::new(hub.clone(), &db, node.id);
        let presence = Presence::new(
            db.clone(),
            bus.clone(),
            node.id,
            node.name.clone(),
            Duration::from_secs(settings.presence_grace_secs),
            settings.node_lease(),
        )
        .start();
        let (registry_hub, registry_name) = (hub, node.name.clone());
        let registry_presence = presence.clone();
        let max_connections = settings.max_connections as usize;
        let registry = Registry::start_in_arbiter(&Arbiter::new().handle(), move |_| {
            Registry::new(registry_hub, max_connections)
                .named(registry_name)
                .with_presence(registry_presence)
        });
        let recovered_queue = take_over(&db, &bus, settings.node_lease())
            .await
            .map_err(StartupError::Recovery)?;
        let erp = erp::from_settings(
            &db,
            settings.erp_url.as_deref(),
            Duration::from_secs(settings.erp_timeout_secs),
            settings.erp_retries,
        );
        let jobs = JobSupervisor::new(
            db.clone(),
            bus.clone(),
            erp,
            settings.job_concurrency as usize,
        )
        .with_lease(settings.node_lease())
        .start();
        jobs.do_send(Resume(recovered_queue));
        let links = Links {
            kick: registry.clone().recipient(),
            cancel: jobs.clone().recipient(),
            stats: registry.clone().recipient(),
            connections: registry.clone().recipient(),
            presence: presence.clone().recipient(),
        };
        let tailer = start_node(&settings, &db, &node, &bus, links).await;
        Pruner::new(
            db.clone(),
            settings.retention(),
            settings.prune_interval(),
            Duration::from_secs(settings.idempotency_secs),
        )
        .start();
        let state = AppState {
            settings: settings.clone(),
            db: db.clone(),
            keys,
            epoch,
            registry: registry.clone(),
            presence,
            drafts: DraftsActor::new(db.clone(), bus.clone()).start(),
            orders: OrdersActor::new(db.clone(), bus.clone()).start(),
            jobs,
            venues: VenueActor::new(db.clone(), bus.clone()).start(),
            sampler: Sampler::default().start(),
            node,
            origins: Origins::new(&settings.allowed_origins),
            limits: Limits::new(
                settings.rest_rate,
                settings.rest_burst,
                settings.upgrade_rate,
            ),
            writes: Inflight::default(),
        };
        state.limits.forget_idle_every(Duration::from_secs(60));
        let parts = AppParts {
            state: web::Data::new(state.clone()),
            limits: web::Data::new(state.limits.clone()),
            origins: state.origins.clone(),
            max_body: settings.max_message_bytes as usize,
            publishers: Publishers::new(db, registry.recipient(), bus, settings.max_publish_bytes),
        };
        let mut builder = Server::build()
            .disable_signals()
            .shutdown_timeout(5)
            .backlog(LISTEN_BACKLOG)
            .max_concurrent_connections(100_000);
        if let Some(workers) = settings.workers {
            builder = builder.workers(workers as usize);
        }
        if let Some(certs) = &certs {
            tls::reload_on_sighup(certs.clone());
            log::info!("serving https:// and wss:// (TLS certificate reloaded on SIGHUP)");
        }
        let server = server::serve(builder, listener, addr, certs, parts)
            .map_err(|source| StartupError::Bind { addr, source })?;
        Ok(Application {
            addr,
            server,
            state,
            tailer,
            _single_node: single_node,
            signals: shutdown::Signals::listen().map_err(StartupError::Signals)?,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The keys this server signs and checks tokens with.
    pub fn keys(&self) -> &TokenKeys {
        &self.state.keys
    }

    /// Whether it serves `https://` and `wss://`.
    pub fn tls(&self) -> bool {
        self.state.settings.tls_cert.is_some()
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully (see
    /// [`shutdown`]).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        actix_web::rt::spawn(shutdown::on_signal(
            self.signals,
            handle,
            self.state.clone(),
        ));
        self.server.await?;
        if let Some(tailer) = self.tailer {
            tailer.stop().await;
        }
        if let Err(err) = node::deregister(&self.state.db, self.state.node.id).await {
            log::warn!(
                "could not mark this node stopped (its jobs are freed after the lease): {err}"
            );
        }
        if let Err(err) = self.state.db.close_cleanly().await {
            log::warn!("could not mark the database as cleanly closed: {err}");
        }
        Ok(())
    }
}

/// This node among the others: its heartbeat, and (several nodes) the
/// tailer that hears what the others commit.
async fn start_node(
    settings: &Settings,
    db: &Db,
    node: &Node,
    bus: &Bus,
    links: Links,
) -> Option<tailer::Stopper> {
    let read_horizon = Arc::new(AtomicI64::new(0));
    node::spawn_heartbeat(
        db.clone(),
        node.clone(),
        links.stats.clone(),
        links.connections.clone(),
        settings.node_lease(),
        read_horizon.clone(),
    );
    if db.is_sqlite() {
        return None;
    }
    let tailer = Tailer {
        db: db.clone(),
        url: settings.database.url.clone(),
        node: node.id,
        poll: settings.poll_interval(),
        bus: bus.clone(),
        links,
        read_horizon,
    };
    Some(tailer.start().await)
}
