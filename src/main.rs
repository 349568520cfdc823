use std::process::ExitCode;

use clap::Parser;
use herald::{
    auth::{self, Claims, TokenKeys},
    cli::{Cli, Command, TokenArgs},
    configuration::Settings,
    db::Db,
    startup::Application,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(settings)) => serve(settings),
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
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("herald: {message}");
    ExitCode::FAILURE
}

fn serve(settings: Settings) -> ExitCode {
    actix_web::rt::System::new().block_on(async move {
        let app = match Application::build(settings).await {
            Ok(app) => app,
            Err(err) => return fail(err.to_string()),
        };
        // Tests and scripts read this line to find the port.
        let scheme = if app.tls() { "https" } else { "http" };
        println!("herald listening on {scheme}://{}", app.addr());
        log::info!("herald listening on {scheme}://{}", app.addr());
        match app.run_until_stopped().await {
            Ok(()) => {
                log::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(err) => fail(format!("server error: {err}")),
        }
    })
}

fn token(args: TokenArgs) -> ExitCode {
    let secret = match auth::load_or_create_secret(args.jwt_secret.as_deref(), &args.database) {
        Ok(secret) => secret,
        Err(err) => return fail(err.to_string()),
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
    ExitCode::SUCCESS
}
