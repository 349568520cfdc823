//! The command line: `herald [serve]`, `herald migrate`, `herald token`,
//! and the operators' `herald check` and `herald tail`.

use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::core::{
    auth::Role,
    config::{parse_ttl, DatabaseSettings, Settings},
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
    Serve(Box<Settings>),
    /// Apply database migrations and exit.
    Migrate(DatabaseSettings),
    /// Print a token signed with the secret the server uses.
    Token(TokenArgs),
    /// Verify the database: every stream's seqs contiguous, timestamps
    /// increasing, no event without its change; exit 1 on a problem.
    Check(DatabaseSettings),
    /// Print a stream's events live from a running server, one JSON line
    /// each (resume with --since).
    Tail(TailArgs),
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("stream").required(true).args(["user", "venue"])))]
pub struct TailArgs {
    /// A dashboard user's stream.
    #[arg(long)]
    pub user: Option<String>,
    /// A cashier venue's broadcasts.
    #[arg(long)]
    pub venue: Option<String>,
    /// Replay from after this seq first (the stream's own numbering).
    #[arg(long)]
    pub since: Option<u64>,
    /// The server to watch.
    #[arg(long = "url", default_value = "http://127.0.0.1:8080")]
    pub server_url: String,
    /// Secret to sign the watching token with; defaults to the server's.
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    #[command(flatten)]
    pub database: DatabaseSettings,
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks of every subcommand (names, groups).
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
