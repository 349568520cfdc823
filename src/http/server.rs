//! The HTTP server: actix-web's `App` (every route and middleware) served
//! by actix-http on actix-server, as actix-web's `HttpServer` would, plus
//! the upgrade service that takes sockets off the HTTP/1 dispatcher
//! ([`crate::socket::connection`]).
//!
//! `HttpServer` cannot be given an upgrade service, so the server is built
//! from the same parts it is built from. What the `App` sees of its
//! connection (`AppConfig`) is actix-web's default: herald reads the host
//! from the `Host` header and nothing of the scheme.

use std::{net::SocketAddr, rc::Rc, sync::Arc, time::Duration};

use actix::Addr;
use actix_codec::{AsyncRead, AsyncWrite, Framed};
use actix_http::{body::BoxBody, h1, HttpService, KeepAlive, Request, Response};
use actix_server::{GracefulShutdownSignal, Server, ServerBuilder};
use actix_service::{
    boxed::{self, BoxServiceFactory},
    fn_factory, fn_service, map_config, IntoServiceFactory, ServiceFactory, ServiceFactoryExt,
};
use actix_web::{
    body::MessageBody,
    dev::{AppConfig, Service, ServiceRequest, ServiceResponse},
    middleware::{from_fn, Condition, Logger},
    web, App,
};

use crate::{
    core::{logging, metrics::METRICS},
    http::{
        error,
        middleware::{headers::security_headers, origins::Origins, rate_limit},
        openapi, routes,
        state::AppState,
        tls::Certificates,
    },
    socket,
    writers::publisher::{Publisher, Publishers},
};

/// What every worker's `App` is made of.
#[derive(Clone)]
pub struct AppParts {
    pub state: web::Data<AppState>,
    pub limits: web::Data<rate_limit::Limits>,
    pub origins: Origins,
    /// `HERALD_MAX_MESSAGE_BYTES`.
    pub max_body: usize,
    /// Each worker starts its own publisher (see [`Publishers`]).
    pub publishers: Publishers,
}

/// The actix-web application: every route and middleware. Built once per
/// worker for requests, and once more for upgrade requests.
fn app(
    parts: &AppParts,
    publisher: web::Data<Addr<Publisher>>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let max_body = parts.max_body;
    App::new()
        .app_data(parts.state.clone())
        .app_data(parts.limits.clone())
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
        .wrap(from_fn(rate_limit::limit_rest))
        .wrap(parts.origins.cors())
        .wrap(security_headers())
        .wrap(Condition::new(
            logging::access_log_enabled(),
            Logger::new(r#"%a "%{request}xi" %s %b %Dms"#)
                .custom_request_replace("request", |req| {
                    format!("{} {}", req.method(), logging::redact_query(req.uri()))
                }),
        ))
        .configure(|cfg| routes(cfg, max_body))
}

/// A worker's request service, and its upgrade service (boxed: one named
/// type for plain TCP and TLS alike).
type Requests = BoxServiceFactory<(), Request, Response<BoxBody>, Response<BoxBody>, ()>;
type Upgrades<T> = BoxServiceFactory<(), (Request, Framed<T, h1::Codec>), (), actix_web::Error, ()>;

/// One worker's HTTP service over connections of type `T` (plain TCP or
/// TLS): requests through the `App`, upgrades through the connection
/// module with a second `App` of the same routes.
fn http_service<T>(
    parts: &AppParts,
    shutdown: GracefulShutdownSignal,
    addr: SocketAddr,
) -> HttpService<T, Requests, BoxBody, h1::ExpectHandler, Upgrades<T>>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let publisher = web::Data::new(parts.publishers.start_here());
    let (upgrade_parts, upgrade_publisher) = (parts.clone(), publisher.clone());
    let upgrades = fn_factory(move || {
        let factory = app(&upgrade_parts, upgrade_publisher.clone()).into_factory();
        async move {
            let app = Rc::new(factory.new_service(AppConfig::default()).await?);
            Ok::<_, ()>(fn_service(move |(req, framed)| {
                let app = app.clone();
                async move {
                    socket::connection::serve(app, req, framed).await;
                    Ok::<_, actix_web::Error>(())
                }
            }))
        }
    });
    let requests = map_config(
        app(parts, publisher)
            .into_factory()
            .map(|res| Response::from(res.map_into_boxed_body()))
            .map_err(|err: actix_web::Error| Response::from(err.error_response())),
        |_| AppConfig::default(),
    );
    HttpService::build()
        .graceful_shutdown_signal(move || {
            let shutdown = shutdown.clone();
            async move { shutdown.notified().await }
        })
        .keep_alive(KeepAlive::default())
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
        .h1_allow_half_closed(true)
        // Frames leave when written: with Nagle's algorithm a frame queued
        // behind an unacknowledged one waits for the client's (delayed)
        // ACK, tens of milliseconds.
        .tcp_nodelay(true)
        .local_addr(addr)
        .upgrade(boxed::factory(upgrades))
        .finish(boxed::factory(requests))
}

/// Listens on `listener` with `parts` (TLS when `certs` are given) and
/// answers the running server; it stops when its handle says so.
pub fn serve(
    builder: ServerBuilder,
    listener: std::net::TcpListener,
    addr: SocketAddr,
    certs: Option<Arc<Certificates>>,
    parts: AppParts,
) -> std::io::Result<Server> {
    let shutdown = builder.graceful_shutdown_signal();
    let builder = match certs {
        Some(certs) => {
            let config = certs.server_config();
            builder.listen("herald", listener, move || {
                http_service(&parts, shutdown.clone(), addr).rustls_0_23(config.clone())
            })
        }
        None => builder.listen("herald", listener, move || {
            http_service(&parts, shutdown.clone(), addr).tcp()
        }),
    }?;
    Ok(builder.run())
}

/// Every route, and how bad bodies, queries and paths are answered.
/// `max_body` is `HERALD_MAX_MESSAGE_BYTES`.
fn routes(cfg: &mut web::ServiceConfig, max_body: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_body)
            .error_handler(error::json_error),
    )
    .app_data(web::PayloadConfig::default().limit(max_body))
    .app_data(web::QueryConfig::default().error_handler(error::query_error))
    .app_data(web::PathConfig::default().error_handler(error::path_error))
    .service(routes::health::healthz)
    .service(routes::health::metrics)
    .service(routes::health::me)
    .service(openapi::openapi_json)
    .service(openapi::docs)
    .service(routes::realtime::realtime)
    .service(routes::publish::publish)
    .service(routes::presence::presence)
    .service(routes::admin::stats)
    .service(routes::admin::history)
    .service(routes::admin::connections)
    .service(routes::admin::kick)
    .service(routes::drafts::list)
    .service(routes::drafts::get_one)
    .service(routes::drafts::create)
    .service(routes::drafts::update)
    .service(routes::drafts::remove)
    .service(routes::drafts::convert)
    .service(routes::pending_orders::list)
    .service(routes::pending_orders::get_one)
    .service(routes::pending_orders::create)
    .service(routes::pending_orders::update)
    .service(routes::pending_orders::remove)
    .service(routes::cashier::terminal)
    .service(routes::cashier::list)
    .service(routes::cashier::create)
    .service(routes::cashier::transfer)
    .service(routes::cashier::get_one)
    .service(routes::cashier::update)
    .service(routes::cashier::remove)
    .service(routes::cashier::add_orders)
    .service(routes::cashier::update_order)
    .service(routes::cashier::remove_order)
    .service(routes::cashier::reset)
    .service(routes::cashier::get_categories)
    .service(routes::cashier::put_categories)
    .service(routes::cashier::get_products)
    .service(routes::cashier::put_products)
    .service(routes::jobs::create)
    .service(routes::jobs::list)
    .service(routes::jobs::get_one)
    .service(routes::jobs::cancel)
    .service(routes::jobs::progress)
    .service(routes::jobs::complete)
    .service(routes::jobs::fail)
    .default_service(web::to(routes::static_files::fallback));
}
