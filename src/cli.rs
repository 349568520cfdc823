//! The command line: `herald [serve]`, `herald migrate`, `herald token`.

use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::{
    auth::Role,
    configuration::{parse_ttl, DatabaseSettings, Settings},
};

#[derive(Parser, Debug)]
#[command(
    name = "herald",
    version,
    about = "A realtime server for order dashboards and cashier terminals",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Settings for serving when no subcommand is given.
    #[command(flatten)]
    pub serve: Settings,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve HTTP and WebSockets (the default).
    Serve(Settings),
    /// Apply database migrations and exit.
    Migrate(DatabaseSettings),
    /// Print a token signed with the secret the server uses.
    Token(TokenArgs),
}

#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    /// The user (or terminal, or service) the token is for.
    #[arg(long)]
    pub sub: String,
    #[arg(long, value_enum)]
    pub role: Role,
    /// Lifetime, e.g. 90s, 30m, 8h, 7d.
    #[arg(long, default_value = "8h", value_parser = parse_ttl)]
    pub ttl: Duration,
    /// Cashier venue (default `main`).
    #[arg(long)]
    pub venue: Option<String>,
    /// Secret to sign with; defaults to the server's.
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    #[command(flatten)]
    pub database: DatabaseSettings,
}
