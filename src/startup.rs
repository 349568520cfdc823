//! Builds the application: database, actors, HTTP server; and runs it until a
//! signal asks it to stop.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use actix::{Actor, Addr, Arbiter};
use actix_http::{HttpService, KeepAlive};
use actix_server::{Server, ServerHandle};
use actix_service::{
    fn_factory, fn_service, map_config, IntoServiceFactory, ServiceFactory, ServiceFactoryExt,
};
use actix_web::{
    body::MessageBody,
    dev::{AppConfig, Service, ServiceRequest, ServiceResponse},
    middleware::{from_fn, Condition, Logger},
    web, App,
};
use std::rc::Rc;

use crate::{
    core::auth::{self, TokenKeys},
    core::config::Settings,
    core::metrics::METRICS,
    core::wire::close,
    http::middleware::{headers::security_headers, origins::Origins, rate_limit::Limits},
    http::routes,
    http::state::AppState,
    hub::room::RoomConfig,
    logging,
    sessions::registry::{CloseAll, Registry},
    store::db::Db,
    writers::crud::{DraftsActor, OrdersActor, VenueActor},
    writers::jobs::{JobSupervisor, Resume},
    writers::pruner::Pruner,
    writers::publisher::{Publisher, Publishers},
};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the database {url}: {source}. Check HERALD_DATABASE_URL (and that its directory exists and is writable)")]
    Database { url: String, source: sea_orm::DbErr },
    #[error("migrating the database failed: {0}")]
    Migration(sea_orm::DbErr),
    #[error(transparent)]
    Secret(#[from] auth::SecretError),
    #[error("recovering interrupted jobs failed: {0}")]
    Recovery(String),
    #[error(transparent)]
    Tls(#[from] crate::http::tls::TlsError),
    #[error(transparent)]
    SingleNode(#[from] crate::store::db::LockError),
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
    tailer: Option<crate::bus::tailer::Stopper>,
    /// SQLite's one-node lock, held until the process ends.
    _single_node: Option<crate::store::db::SingleNode>,
}

/// The actix-web application: every route and middleware. Built once per
/// worker for requests, and once more for upgrade requests (src/wsio.rs).
fn app(
    data: web::Data<AppState>,
    publisher: web::Data<Addr<Publisher>>,
    origins: Origins,
    max_body: usize,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(data)
        .app_data(publisher)
        .wrap_fn(|req, srv| {
            let started = std::time::Instant::now();
            let method = req.method().to_string();
            let fut = srv.call(req);
            async move {
                let res = fut.await?;
                let route = res
                    .request()
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".into());
                METRICS
                    .http_request_duration
                    .with_label_values(&[method.as_str(), route.as_str(), res.status().as_str()])
                    .observe(started.elapsed().as_secs_f64());
                Ok(res)
            }
        })
        .wrap(from_fn(crate::http::middleware::rate_limit::limit_rest))
        .wrap(origins.cors())
        .wrap(security_headers())
        .wrap(Condition::new(
            logging::access_log_enabled(),
            Logger::new(r#"%a "%{request}xi" %s %b %Dms"#)
                .custom_request_replace("request", |req| {
                    format!("{} {}", req.method(), logging::redact_query(req.uri()))
                }),
        ))
        .configure(|cfg| routes::configure(cfg, max_body))
}

pub async fn connect_database(settings: &Settings) -> Result<Db, StartupError> {
    let db = Db::connect(&settings.database)
        .await
        .map_err(|source| StartupError::Database {
            url: logging::redact_url(&settings.database.url),
            source,
        })?;
    db.migrate().await.map_err(StartupError::Migration)?;
    Ok(db)
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        let settings = Arc::new(settings);
        // Bind first: a taken port is reported before anything starts.
        let listener =
            std::net::TcpListener::bind(settings.addr).map_err(|source| StartupError::Bind {
                addr: settings.addr,
                source,
            })?;
        let addr = listener.local_addr().unwrap_or(settings.addr);
        // A bad certificate stops startup before anything else happens.
        let certs = match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => Some(crate::http::tls::Certificates::load(cert, key)?),
            _ => None,
        };
        let mut db = connect_database(&settings).await?;
        // Explicit, else beside the SQLite file, else (PostgreSQL) in the
        // database, so every node and `herald token` share it.
        let secret = match (&settings.jwt_secret, settings.database.is_sqlite()) {
            (Some(secret), _) => secret.as_bytes().to_vec(),
            (None, true) => auth::load_or_create_secret(None, &settings.database)?,
            (None, false) => auth::shared_secret(&db.write)
                .await
                .map_err(StartupError::Migration)?,
        };
        let keys = TokenKeys::new(&secret);
        // A second node on one SQLite file stops here, before it serves
        // or touches the epoch (migrations are idempotent).
        let single_node = crate::store::db::SingleNode::lock(&settings.database)?;
        let epoch: Arc<str> = Arc::from(db.epoch().await.map_err(StartupError::Migration)?);
        // This process as one node: stamped on what it writes, its heartbeat
        // holds its jobs (several nodes: see `cluster`).
        let node_name = settings
            .node_name
            .clone()
            .unwrap_or_else(crate::bus::node::default_name);
        let node = crate::bus::node::register(&db, &node_name, &addr.to_string())
            .await
            .map_err(StartupError::Migration)?;
        db.node = Some(node.id);
        let several = !db.is_sqlite();
        if several {
            log::info!(
                "node {} (id {}) on PostgreSQL: other nodes on this database are heard through it",
                node.name,
                node.id
            );
        }

        let room_config = RoomConfig {
            db: db.clone(),
            epoch: epoch.clone(),
            buffer_events: settings.buffer_events as usize,
            buffer_ttl: settings.buffer_ttl(),
            retention: settings.retention(),
            heartbeat_secs: settings.heartbeat_secs,
            max_pending: settings.send_queue as usize,
            max_replay: settings.max_replay_events,
        };
        // Registry and rooms get a thread of their own, away from the HTTP workers.
        let hub = Arbiter::new();
        let max_connections = settings.max_connections as usize;
        let forward = several.then(|| {
            crate::bus::node::Forwarder::new(db.clone(), node.id)
                .start()
                .recipient()
        });
        let threads = settings
            .room_threads
            .map(|n| n as usize)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let room_threads: Vec<_> = (0..threads).map(|_| Arbiter::new().handle()).collect();
        log::info!("rooms run on {threads} thread(s) (HERALD_ROOM_THREADS)");
        let rooms = crate::hub::Rooms::start(room_config, &room_threads).forwarding(forward);
        let (registry_rooms, registry_name) = (rooms.clone(), node.name.clone());
        let registry = Registry::start_in_arbiter(&hub.handle(), move |_| {
            Registry::new(registry_rooms, max_connections).named(registry_name)
        });
        let publishers = Publishers::new(
            db.clone(),
            registry.clone(),
            rooms.clone(),
            settings.max_publish_bytes,
        );
        let recovered_queue = crate::writers::jobs::take_over(&db, &rooms, settings.node_lease())
            .await
            .map_err(|e| StartupError::Recovery(e.to_string()))?;
        let erp = crate::writers::erp::from_settings(
            &db,
            settings.erp_url.as_deref(),
            Duration::from_secs(settings.erp_timeout_secs),
            settings.erp_retries,
        );
        let jobs = JobSupervisor::new(
            db.clone(),
            rooms.clone(),
            erp,
            settings.job_concurrency as usize,
        )
        .with_lease(settings.node_lease())
        .start();
        jobs.do_send(Resume(recovered_queue));
        crate::bus::node::spawn_heartbeat(
            db.clone(),
            node.clone(),
            registry.clone(),
            settings.node_lease(),
        );
        let mut tailer = None;
        if several {
            tailer = Some(
                crate::bus::tailer::Tailer {
                    db: db.clone(),
                    url: settings.database.url.clone(),
                    node: node.id,
                    poll: settings.poll_interval(),
                    registry: registry.clone(),
                    rooms: rooms.clone(),
                    jobs: jobs.clone(),
                }
                .spawn(),
            );
        }
        let drafts = DraftsActor::new(db.clone(), rooms.clone()).start();
        let venues = VenueActor::new(db.clone(), rooms.clone()).start();
        let orders = OrdersActor::new(db.clone(), rooms.clone()).start();
        Pruner::new(db.clone(), settings.retention(), settings.prune_interval()).start();

        let state = AppState {
            settings: settings.clone(),
            db,
            keys,
            epoch,
            registry,
            drafts,
            orders,
            jobs,
            venues,
            sampler: crate::http::sampler::Sampler::default().start(),
            node,
            origins: Origins::new(&settings.allowed_origins),
            limits: Limits::new(
                settings.rest_rate,
                settings.rest_burst,
                settings.upgrade_rate,
            ),
        };
        let limits = state.limits.clone();
        actix_web::rt::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                limits.forget_idle();
            }
        });
        let origins = state.origins.clone();
        let max_body = settings.max_message_bytes as usize;
        let data = web::Data::new(state.clone());
        // Called on each HTTP worker's thread, with that worker's publisher.
        let make_app = move |publisher: web::Data<Addr<Publisher>>| {
            app(data.clone(), publisher, origins.clone(), max_body)
        };
        let mut builder = actix_server::Server::build()
            .disable_signals()
            .shutdown_timeout(5)
            .backlog(4096)
            .max_concurrent_connections(100_000);
        if let Some(workers) = settings.workers {
            builder = builder.workers(workers as usize);
        }
        let shutdown = builder.graceful_shutdown_signal();
        // What the App sees of its connection, as `HttpServer` sets it
        // (the same for requests and for upgrades).
        let app_config =
            move |secure: bool| AppConfig::__priv_test_new(secure, addr.to_string(), addr);
        // What actix-web's `HttpServer` builds, plus the upgrade service that
        // takes sockets off the HTTP/1 dispatcher (src/wsio.rs).
        macro_rules! http_service {
            ($secure:expr) => {{
                let shutdown = shutdown.clone();
                let publisher = web::Data::new(publishers.start_here());
                let upgrade_app = make_app.clone();
                let upgrade_publisher = publisher.clone();
                HttpService::build()
                    .graceful_shutdown_signal(move || {
                        let shutdown = shutdown.clone();
                        async move { shutdown.notified().await }
                    })
                    .keep_alive(KeepAlive::default())
                    .client_request_timeout(Duration::from_secs(5))
                    .client_disconnect_timeout(Duration::from_secs(1))
                    .h1_allow_half_closed(true)
                    // Frames leave when written: with Nagle's algorithm a
                    // frame queued behind an unacknowledged one waits for
                    // the client's (delayed) ACK, tens of milliseconds.
                    .tcp_nodelay(true)
                    .local_addr(addr)
                    .upgrade(fn_factory(move || {
                        let factory = upgrade_app(upgrade_publisher.clone()).into_factory();
                        async move {
                            let app = Rc::new(factory.new_service(app_config($secure)).await?);
                            Ok::<_, ()>(fn_service(move |(req, framed)| {
                                let app = app.clone();
                                async move {
                                    crate::socket::connection::serve(app, req, framed).await;
                                    Ok::<_, actix_web::Error>(())
                                }
                            }))
                        }
                    }))
                    .finish(map_config(
                        make_app(publisher)
                            .into_factory()
                            .map_err(|err: actix_web::Error| err.error_response()),
                        move |_| app_config($secure),
                    ))
            }};
        }
        let builder = match certs {
            Some(certs) => {
                crate::http::tls::reload_on_sighup(certs.clone());
                log::info!("serving https:// and wss:// (TLS certificate reloaded on SIGHUP)");
                let config = certs.server_config();
                builder.listen("herald", listener, move || {
                    http_service!(true).rustls_0_23(config.clone())
                })
            }
            None => builder.listen("herald", listener, move || http_service!(false).tcp()),
        }
        .map_err(|source| StartupError::Bind { addr, source })?;
        let server = builder.run();
        Ok(Application {
            addr,
            server,
            state,
            tailer,
            _single_node: single_node,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it serves `https://` and `wss://`.
    pub fn tls(&self) -> bool {
        self.state.settings.tls_cert.is_some()
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully: stop
    /// accepting, close every socket with 1001, finish in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        actix_web::rt::spawn(shutdown_on_signal(handle, self.state.clone()));
        self.server.await?;
        if let Some(tailer) = self.tailer {
            tailer.stop().await;
        }
        if let Err(err) = crate::bus::node::deregister(&self.state.db, self.state.node.id).await {
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

async fn shutdown_on_signal(server: ServerHandle, state: AppState) {
    wait_for_signal().await;
    log::info!("shutting down: closing sockets, finishing requests");
    let stopping = server.stop(true);
    let closed = state
        .registry
        .send(CloseAll {
            code: close::GOING_AWAY,
            reason: "server shutting down".into(),
        })
        .await
        .unwrap_or(0);
    log::info!("closed {closed} socket(s)");
    // A second signal, or a stuck shutdown, ends the process at once.
    actix_web::rt::spawn(async {
        tokio::select! {
            _ = wait_for_signal() => log::warn!("second signal: exiting now"),
            _ = tokio::time::sleep(Duration::from_secs(9)) => log::warn!("shutdown took too long: exiting now"),
        }
        std::process::exit(1);
    });
    stopping.await;
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("can listen for SIGTERM");
        let mut int = signal(SignalKind::interrupt()).expect("can listen for SIGINT");
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
