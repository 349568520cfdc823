//! Settings: every knob of `herald serve`, from flags or `HERALD_*` variables.
//!
//! Values are validated while parsing (clap value parsers), so a bad value
//! stops the server at startup with a message naming the setting, instead of
//! surfacing later as odd behaviour.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};

/// Whether cashier terminals must present a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CashierAuth {
    /// Every terminal presents a token with role `cashier` or `admin`.
    Required,
    /// Terminals on a trusted LAN connect without a token (venue `main`).
    Off,
}

/// When a SQLite commit counts as done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SyncMode {
    /// Every commit is fsynced before it is answered: nothing answered is
    /// lost, not even on an OS crash or a power cut (the default).
    Full,
    /// Commits reach the OS, and disk at each checkpoint: a killed process
    /// loses nothing, an OS crash or power cut may lose the last commits
    /// (the next start then gives the database a new epoch, so devices
    /// refetch instead of trusting a history that changed).
    Normal,
}

/// The database when none is given: SQLite in `./herald.db`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://herald.db?mode=rwc";

/// Where the database lives; shared by `serve`, `migrate` and `token`
/// (the generated JWT secret is kept beside the database).
#[derive(Args, Clone, Debug)]
pub struct DatabaseSettings {
    /// Database URL: `sqlite://PATH?mode=rwc` (embedded) or `postgres://...`.
    #[arg(
        long = "database-url",
        env = "HERALD_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        value_parser = parse_database_url
    )]
    pub url: String,

    /// SQLite durability: `full` (fsync before every answer) or `normal`
    /// (faster; an OS crash or power cut may lose answered writes).
    #[arg(long = "sync", env = "HERALD_SYNC", value_enum, default_value = "full")]
    pub sync: SyncMode,
}

impl DatabaseSettings {
    pub fn is_sqlite(&self) -> bool {
        self.url.starts_with("sqlite:")
    }

    /// The SQLite database file, when the URL names one.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.url.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            None
        } else {
            Some(PathBuf::from(path))
        }
    }
}

/// Everything `herald serve` needs.
#[derive(Args, Clone, Debug)]
pub struct Settings {
    /// Address to listen on (use port 0 for an ephemeral port).
    #[arg(long, env = "HERALD_ADDR", default_value = "0.0.0.0:8080")]
    pub addr: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseSettings,

    /// HS256 secret for tokens; when unset one is generated beside the database.
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub jwt_secret: Option<String>,

    /// Whether cashier terminals on `/ws` need a token.
    #[arg(
        long,
        env = "HERALD_CASHIER_AUTH",
        value_enum,
        default_value = "required"
    )]
    pub cashier_auth: CashierAuth,

    /// Events kept in memory per room for fast replay.
    #[arg(long, env = "HERALD_BUFFER_EVENTS", default_value = "200",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub buffer_events: u32,

    /// Seconds an event stays in a room's in-memory ring.
    #[arg(long, env = "HERALD_BUFFER_TTL_SECS", default_value = "300",
          value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub buffer_ttl_secs: u64,

    /// Seconds events are kept in the database for replay.
    #[arg(long, env = "HERALD_RETENTION_SECS", default_value = "86400",
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub retention_secs: u64,

    /// Seconds between retention prunes (default: a tenth of the retention, 1 s to 5 min).
    #[arg(long, env = "HERALD_PRUNE_INTERVAL_SECS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub prune_interval_secs: Option<u64>,

    /// Seconds between protocol pings; a socket silent for 2.5 intervals is closed.
    #[arg(long, env = "HERALD_HEARTBEAT_SECS", default_value = "30",
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub heartbeat_secs: u64,

    /// Seconds of silence after which a cashier terminal is closed.
    #[arg(long, env = "HERALD_IDLE_TIMEOUT_SECS", default_value = "300",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_secs: u64,

    /// Most sockets open at once (dashboards and terminals together).
    #[arg(long, env = "HERALD_MAX_CONNECTIONS", default_value = "10000",
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub max_connections: u32,

    /// Messages a second one cashier terminal may send (bursts of twice that).
    #[arg(long, env = "HERALD_CASHIER_RATE", default_value = "50",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub cashier_rate: u32,

    /// Frames queued for one socket before it counts as too slow (closed with 4008).
    #[arg(long, env = "HERALD_SEND_QUEUE", default_value = "1024",
          value_parser = clap::value_parser!(u32).range(8..=1_000_000))]
    pub send_queue: u32,

    /// This node's name in `/api/admin/connections` and the `nodes` table
    /// (default: host name and process id). A node restarted under the same
    /// name frees its previous run's jobs at once instead of after the lease.
    #[arg(long, env = "HERALD_NODE_NAME")]
    pub node_name: Option<String>,

    /// Several nodes: how long a node's heartbeat holds its built-in jobs.
    /// A node silent for longer is taken for dead and its jobs are recovered
    /// by the others. It beats every lease / 5.
    #[arg(long, env = "HERALD_NODE_LEASE_MS", default_value = "10000",
          value_parser = clap::value_parser!(u64).range(500..=600_000))]
    pub node_lease_ms: u64,

    /// Several nodes: the tailer reads the shared log at least this often
    /// (it is woken at once by `NOTIFY`, and reads after every reconnect of
    /// its `LISTEN`; this bounds the delay should a notification still be
    /// lost, and is the only read at idle).
    #[arg(long, env = "HERALD_POLL_MS", default_value = "2000",
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub poll_ms: u64,

    /// Threads the rooms (fan-out and replay) run on; each room stays on
    /// one, chosen by a hash of its key (default: one per core).
    #[arg(long, env = "HERALD_ROOM_THREADS",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub room_threads: Option<u32>,

    /// Built-in jobs running at once.
    #[arg(long, env = "HERALD_JOB_CONCURRENCY", default_value = "4",
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub job_concurrency: u32,

    /// The order system's endpoint for submitted orders (unset: local numbering).
    #[arg(long, env = "HERALD_ERP_URL", value_parser = parse_http_url)]
    pub erp_url: Option<String>,

    /// Seconds one ERP request may take.
    #[arg(long, env = "HERALD_ERP_TIMEOUT_SECS", default_value = "10",
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub erp_timeout_secs: u64,

    /// Retries of a failed ERP request (with exponential backoff).
    #[arg(long, env = "HERALD_ERP_RETRIES", default_value = "3",
          value_parser = clap::value_parser!(u32).range(0..=20))]
    pub erp_retries: u32,

    /// Largest REST body and socket message, in bytes (larger: 413 / close 1009).
    #[arg(long, env = "HERALD_MAX_MESSAGE_BYTES", default_value = "1048576",
          value_parser = clap::value_parser!(u64).range(1024..=64 * 1024 * 1024))]
    pub max_message_bytes: u64,

    /// Recipients × payload bytes one `POST /api/publish` may write (larger: 413).
    #[arg(long, env = "HERALD_MAX_PUBLISH_BYTES", default_value = "67108864",
          value_parser = clap::value_parser!(u64).range(1024..=u64::MAX))]
    pub max_publish_bytes: u64,

    /// Most missed events one reconnect replays; a larger gap answers
    /// `recovered: false` and the client refetches over REST.
    #[arg(long, env = "HERALD_MAX_REPLAY_EVENTS", default_value = "10000",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_replay_events: u64,

    /// Seconds a write's answer is kept under its `Idempotency-Key`: a
    /// repeat within this time gets the stored answer and changes nothing.
    #[arg(long, env = "HERALD_IDEMPOTENCY_SECS", default_value = "86400",
          value_parser = clap::value_parser!(u64).range(1..=30 * 86_400))]
    pub idempotency_secs: u64,

    /// Seconds a device that dropped still shows as present: one that
    /// comes back within it never shows as gone (0: at once).
    #[arg(long, env = "HERALD_PRESENCE_GRACE_SECS", default_value = "15",
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub presence_grace_secs: u64,

    /// Browser origins allowed to call the REST API (CORS) and open sockets,
    /// comma separated (`https://app.example.com,http://localhost:5173`).
    /// The server's own origin is always allowed; clients that send no
    /// `Origin` (native apps, back ends) are never affected.
    #[arg(long, env = "HERALD_ALLOWED_ORIGINS", value_delimiter = ',',
          value_parser = parse_origin)]
    pub allowed_origins: Vec<String>,

    /// PEM certificate chain: with `HERALD_TLS_KEY`, serve `https://` and
    /// `wss://` on the same port (reloaded on SIGHUP).
    #[arg(long, env = "HERALD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `HERALD_TLS_CERT`.
    #[arg(long, env = "HERALD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// REST calls a second one token may make (429 with `Retry-After` beyond).
    #[arg(long, env = "HERALD_REST_RATE", default_value = "1000",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rest_rate: u32,

    /// REST calls one token may make at once above its rate.
    #[arg(long, env = "HERALD_REST_BURST", default_value = "2000",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rest_burst: u32,

    /// New socket upgrades a second from one client address (bursts of
    /// twice that; 429 with `Retry-After` beyond).
    #[arg(long, env = "HERALD_UPGRADE_RATE", default_value = "100",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub upgrade_rate: u32,

    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "HERALD_WORKERS",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
}

impl Settings {
    pub fn buffer_ttl(&self) -> Duration {
        Duration::from_secs(self.buffer_ttl_secs)
    }
    /// How long a write's stored answer counts, in milliseconds.
    pub fn idempotency_ms(&self) -> i64 {
        (self.idempotency_secs * 1000) as i64
    }
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.retention_secs)
    }
    pub fn node_lease(&self) -> Duration {
        Duration::from_millis(self.node_lease_ms)
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }
    pub fn prune_interval(&self) -> Duration {
        match self.prune_interval_secs {
            Some(secs) => Duration::from_secs(secs),
            None => (self.retention() / 10).clamp(Duration::from_secs(1), Duration::from_secs(300)),
        }
    }
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }
    /// A socket that answers nothing for this long is closed.
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(self.heartbeat_secs * 2500)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}

fn parse_database_url(value: &str) -> Result<String, String> {
    let ok = value.starts_with("sqlite:")
        || value.starts_with("postgres://")
        || value.starts_with("postgresql://");
    if ok {
        Ok(value.to_owned())
    } else {
        Err("expected sqlite://PATH?mode=rwc or postgres://USER:PASS@HOST/DB".into())
    }
}

/// A browser origin: `scheme://host[:port]`, no path (a trailing `/` is dropped).
fn parse_origin(value: &str) -> Result<String, String> {
    let value = value.trim().trim_end_matches('/');
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
        .ok_or_else(|| format!("`{value}` is not an origin; write it as https://host[:port]"))?;
    if rest.is_empty() || rest.contains('/') || rest.contains('*') {
        return Err(format!(
            "`{value}` is not an origin; write it as https://host[:port], without a path or wildcard"
        ));
    }
    Ok(value.to_owned())
}

fn parse_http_url(value: &str) -> Result<String, String> {
    if (value.starts_with("http://") || value.starts_with("https://")) && value.len() > 8 {
        Ok(value.to_owned())
    } else {
        Err("expected an http:// or https:// URL".into())
    }
}

fn parse_secret(value: &str) -> Result<String, String> {
    if value.len() < 16 {
        Err("the JWT secret must be at least 16 bytes; unset it to have one generated".into())
    } else {
        Ok(value.to_owned())
    }
}

/// Parses a token lifetime such as `90s`, `30m`, `8h` or `7d`.
pub fn parse_ttl(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{value}` is not a duration; use e.g. 90s, 30m, 8h or 7d"))?;
    let secs = match unit {
        "s" | "" => number,
        "m" => number * 60,
        "h" => number * 3600,
        "d" => number * 86_400,
        _ => return Err(format!("unknown unit `{unit}`; use s, m, h or d")),
    };
    if secs == 0 {
        return Err("a token lifetime must be longer than zero".into());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("8h").unwrap(), Duration::from_secs(8 * 3600));
        assert_eq!(parse_ttl("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("5y").is_err());
    }

    #[test]
    fn sqlite_paths() {
        let db = |url: &str| DatabaseSettings {
            url: url.into(),
            sync: SyncMode::Full,
        };
        assert_eq!(
            db("sqlite://data/herald.db?mode=rwc").sqlite_path(),
            Some(PathBuf::from("data/herald.db"))
        );
        assert_eq!(
            db("sqlite:///tmp/x.db").sqlite_path(),
            Some(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(db("sqlite::memory:").sqlite_path(), None);
        assert_eq!(db("postgres://u@h/d").sqlite_path(), None);
    }
}
