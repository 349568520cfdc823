/// jemalloc: less CPU per delivery and less memory per idle socket than the
/// system allocator, measured (`docs/benchmarks-history.md`); the `jemalloc` feature.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::process::ExitCode;

use clap::Parser;
use herald::{
    cli::{Cli, Command, TailArgs, TokenArgs},
    core::{
        auth::{self, Claims, TokenKeys},
        config::{DatabaseSettings, Settings, DEFAULT_DATABASE_URL},
    },
    startup::Application,
    store::{db::Db, secret},
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or(herald::core::logging::default_log_filter()),
    )
    .format_timestamp_millis()
    .init();
    match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(settings)) => serve(*settings),
        Some(Command::Migrate(database)) => actix_web::rt::System::new().block_on(async move {
            let db = match Db::connect(&database).await {
                Ok(db) => db,
                Err(err) => return fail(format!("cannot open the database: {err}")),
            };
            match db.migrate().await {
                Ok(()) => {
                    println!("migrations applied");
                    ExitCode::SUCCESS
                }
                Err(err) => fail(format!("migration failed: {err}")),
            }
        }),
        Some(Command::Token(args)) => token(args),
        Some(Command::Check(database)) => actix_web::rt::System::new().block_on(check(database)),
        Some(Command::Tail(args)) => actix_web::rt::System::new().block_on(tail(args)),
    }
}

async fn check(database: DatabaseSettings) -> ExitCode {
    let db = match Db::connect(&database).await {
        Ok(db) => db,
        Err(err) => return fail(format!("cannot open the database: {err}")),
    };
    println!("checking {} ...", database.url);
    let report = match herald::store::check::check(&db.read).await {
        Ok(report) => report,
        Err(err) => {
            return fail(format!(
                "reading the database failed: {err} (run `herald migrate` if it is older)"
            ))
        }
    };
    println!(
        "{} stream(s), {} stored event(s)",
        report.streams, report.events
    );
    if report.problems.is_empty() {
        println!("ok: every stream is contiguous, in time order, and every event has its change");
        return ExitCode::SUCCESS;
    }
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    println!(
        "{} problem(s) found; devices resuming over a hole get `recovered: false` and refetch",
        report.problems.len()
    );
    ExitCode::FAILURE
}

async fn tail(args: TailArgs) -> ExitCode {
    use futures_util::{SinkExt, StreamExt};
    use std::io::Write;
    use tokio_tungstenite::tungstenite::Message;

    let secret = match server_secret(args.jwt_secret.as_deref(), &args.database).await {
        Ok(secret) => secret,
        Err(err) => return fail(err),
    };
    let keys = TokenKeys::new(&secret);
    let base = args.server_url.trim_end_matches('/');
    let Some(rest) = base.strip_prefix("http://") else {
        return fail(format!(
            "--url {base}: herald tail speaks plain ws://; give the http:// address of a node"
        ));
    };
    let day = std::time::Duration::from_secs(86_400);
    let (url, connect) = match (&args.user, &args.venue) {
        (Some(user), _) => {
            let token = keys.mint_for(user, auth::Role::Admin, day, None);
            let since = args
                .since
                .map(|s| format!("&since={s}"))
                .unwrap_or_default();
            (
                format!("ws://{rest}/ws/realtime?token={token}&deviceId=herald-tail{since}"),
                None,
            )
        }
        (None, Some(venue)) => {
            let token = keys.mint_for("herald-tail", auth::Role::Admin, day, Some(venue.clone()));
            let mut hello = serde_json::json!({"type": "connect", "clientId": "herald-tail"});
            if let Some(since) = args.since {
                hello["lastSeq"] = since.into();
            }
            (format!("ws://{rest}/ws?token={token}"), Some(hello))
        }
        (None, None) => return fail("give --user or --venue".into()),
    };
    let source = secret::secret_source(args.jwt_secret.is_some(), &args.database);
    let (mut ws, _) = match tokio_tungstenite::connect_async(url.as_str()).await {
        Ok(ws) => ws,
        Err(err) => {
            return fail(format!(
                "cannot connect to {base}: {err}; is herald running there (--url), and does it sign with {source} (else give --jwt-secret or its --database-url)?"
            ))
        }
    };
    if let Some(hello) = connect {
        if let Err(err) = ws.send(Message::text(hello.to_string())).await {
            return fail(format!("the server closed the socket: {err}"));
        }
    }
    eprintln!(
        "tailing {}; Ctrl-C stops",
        args.user
            .as_deref()
            .map(|u| format!("user {u}"))
            .unwrap_or_else(|| format!("venue {}", args.venue.as_deref().unwrap_or_default()))
    );
    let mut out = std::io::stdout();
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Text(text)) => {
                if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
                    return ExitCode::SUCCESS; // the reader went away
                }
            }
            Ok(Message::Close(frame)) => {
                eprintln!(
                    "the server closed the stream: {frame:?}; run again with --since to resume"
                );
                return ExitCode::FAILURE;
            }
            Ok(_) => {}
            Err(err) => {
                return fail(format!(
                    "the stream broke: {err}; run again with --since to resume"
                ))
            }
        }
    }
    ExitCode::SUCCESS
}

fn fail(message: String) -> ExitCode {
    eprintln!("herald: {message}");
    ExitCode::FAILURE
}

/// How this server was started, for the token command it suggests.
struct Started {
    database_url: String,
    default_database: bool,
    explicit_secret: bool,
    via_cargo: bool,
}

/// After the listening line: where the dashboard is and how to sign in. On
/// a terminal (a developer's `cargo run`) a sign-in link for an admin, valid
/// 12 hours, is printed too; never into a log (stdout not a terminal).
fn first_run_help(app: &Application, scheme: &str, how: &Started) {
    use std::io::IsTerminal;
    let addr = app.addr();
    let host = if addr.ip().is_unspecified() || addr.ip().is_loopback() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
    let base = format!("{scheme}://{host}");
    let command = if how.via_cargo {
        "cargo run --release --".to_owned()
    } else {
        std::env::args().next().unwrap_or_else(|| "herald".into())
    };
    let mut same = String::new();
    if !how.default_database {
        same.push_str(&format!(" --database-url '{}'", how.database_url));
    }
    if how.explicit_secret {
        same.push_str(" (with the same HERALD_JWT_SECRET)");
    }
    println!("  dashboard: {base}/  (sign in with a token)");
    println!("  a token:   {command} token --sub alice --role agent{same}");
    println!("             roles: agent, admin, service, cashier --venue main");
    println!("  API docs:  {base}/api/docs    metrics: {base}/metrics");
    if std::io::stdout().is_terminal() {
        let token = app.keys().mint_for(
            "admin",
            auth::Role::Admin,
            std::time::Duration::from_secs(12 * 3600),
            None,
        );
        println!("  open as admin (12 h): {base}/?token={token}#/admin");
    }
}

fn serve(settings: Settings) -> ExitCode {
    let how = Started {
        database_url: settings.database.url.clone(),
        default_database: settings.database.url == DEFAULT_DATABASE_URL,
        explicit_secret: settings.jwt_secret.is_some(),
        via_cargo: std::env::var_os("CARGO").is_some(),
    };
    actix_web::rt::System::new().block_on(async move {
        let app = match Application::build(settings).await {
            Ok(app) => app,
            Err(err) => return fail(err.to_string()),
        };
        // Tests and scripts read this line to find the port.
        let scheme = if app.tls() { "https" } else { "http" };
        println!("herald listening on {scheme}://{}", app.addr());
        first_run_help(&app, scheme, &how);
        match app.run_until_stopped().await {
            Ok(()) => {
                log::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(err) => fail(format!("server error: {err}")),
        }
    })
}

/// The secret the server signs with: explicit, beside the SQLite file, or
/// (PostgreSQL) the one every node keeps in the database.
async fn server_secret(
    explicit: Option<&str>,
    database: &DatabaseSettings,
) -> Result<Vec<u8>, String> {
    if explicit.is_some() || database.is_sqlite() {
        return secret::load_or_create_secret(explicit, database).map_err(|e| e.to_string());
    }
    let db = Db::connect(database)
        .await
        .map_err(|e| format!("cannot open the database for its secret: {e}"))?;
    db.migrate()
        .await
        .map_err(|e| format!("migrating the database failed: {e}"))?;
    secret::shared_secret(&db.write)
        .await
        .map_err(|e| format!("reading the shared secret failed: {e}"))
}

fn token(args: TokenArgs) -> ExitCode {
    let secret = actix_web::rt::System::new()
        .block_on(server_secret(args.jwt_secret.as_deref(), &args.database));
    let secret = match secret {
        Ok(secret) => secret,
        Err(err) => return fail(err),
    };
    if args.sub.is_empty() {
        return fail("--sub must not be empty".into());
    }
    let keys = TokenKeys::new(&secret);
    let claims = Claims {
        sub: args.sub,
        role: args.role,
        exp: auth::unix_now() + args.ttl.as_secs(),
        venue: args.venue,
    };
    println!("{}", keys.mint(&claims));
    eprintln!(
        "herald: signed with {}; the server must use the same",
        secret::secret_source(args.jwt_secret.is_some(), &args.database)
    );
    ExitCode::SUCCESS
}
