//! Command-line types: the `serve` sub-command; every flag also reads the environment
//! variable of the same name, and its value name is that variable so errors name it.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Color;

/// switchyard: a blue-green WebSocket application server with sessions in Redis.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve WebSocket sessions, health, readiness and metrics until SIGTERM or SIGINT.
    Serve(ServeArgs),
    /// Apply pending Redis keyspace migrations (migrations/), each once, then exit.
    Migrate(MigrateArgs),
    /// GET an endpoint of the instance on this host (a container health check: the images
    /// have no curl); exit 0 on a 2xx answer, 1 otherwise.
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Port of the instance to ask, on 127.0.0.1 (the `serve` PORT of this container).
    #[arg(long, env = "PORT", value_name = "PORT", default_value_t = 8000)]
    pub port: u16,

    /// Path to GET: /healthz (alive), /readyz (ready for traffic), /metrics, ...
    #[arg(long, default_value = "/healthz", value_parser = absolute_path)]
    pub path: String,

    /// Deadline of connecting, and of each read and write, in milliseconds.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,

    /// Print the answer's body on stdout.
    #[arg(long)]
    pub print: bool,
}

fn absolute_path(path: &str) -> Result<String, String> {
    if path.starts_with('/') && !path.contains(char::is_whitespace) {
        Ok(path.to_string())
    } else {
        Err(format!("'{path}' is not an absolute path such as /readyz"))
    }
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub redis: RedisArgs,
}

/// Where Redis is and how long to wait for it (`serve` and `migrate`).
#[derive(Debug, Args)]
pub struct RedisArgs {
    /// Redis URL (redis://[user:password@]host:port[/db]).
    #[arg(
        long,
        env = "REDIS_URL",
        value_name = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,

    /// Deadline for each Redis call and for connecting to Redis, in milliseconds.
    #[arg(
        long,
        env = "REDIS_TIMEOUT_MS",
        value_name = "REDIS_TIMEOUT_MS",
        default_value_t = 1000
    )]
    pub redis_timeout_ms: u64,
}

/// Where sessions are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// Redis at REDIS_URL: shared by every instance and both colors.
    Redis,
    /// This process's memory: one instance only, lost on exit. Never chosen implicitly.
    Memory,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for log shippers and tests).
    Json,
    /// Human-readable lines.
    Pretty,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Deployment color this instance announces (blue or green).
    #[arg(long, env = "COLOR", value_name = "COLOR", value_enum, default_value_t = Color::Blue)]
    pub color: Color,

    /// TCP port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", value_name = "PORT", default_value_t = 8000)]
    pub port: u16,

    /// Address to bind.
    #[arg(long, env = "BIND", value_name = "BIND", default_value = "0.0.0.0")]
    pub bind: String,

    /// Session store backend.
    #[arg(long, env = "STORE", value_name = "STORE", value_enum, default_value_t = StoreKind::Redis)]
    pub store: StoreKind,

    #[command(flatten)]
    pub redis: RedisArgs,

    /// Seconds between heartbeats; a connection silent for two intervals is closed.
    #[arg(
        long,
        env = "HEARTBEAT_INTERVAL_SECS",
        value_name = "HEARTBEAT_INTERVAL_SECS",
        default_value_t = 30
    )]
    pub heartbeat_interval_secs: u64,

    /// Seconds a session lives in the store after its last message.
    #[arg(
        long,
        env = "SESSION_TTL_SECS",
        value_name = "SESSION_TTL_SECS",
        default_value_t = 3600
    )]
    pub session_ttl_secs: u64,

    /// Longest a drain may take before the remaining connections are cut, in seconds.
    #[arg(
        long,
        env = "DRAIN_TIMEOUT_SECS",
        value_name = "DRAIN_TIMEOUT_SECS",
        default_value_t = 25
    )]
    pub drain_timeout_secs: u64,

    /// Time over which the drain spreads its close frames, in milliseconds.
    #[arg(
        long,
        env = "DRAIN_SPREAD_MS",
        value_name = "DRAIN_SPREAD_MS",
        default_value_t = 2000
    )]
    pub drain_spread_ms: u64,

    /// Longest a client may take to send a request's headers (and an idle HTTP connection may
    /// stay open) before the connection is closed, in seconds.
    #[arg(
        long,
        env = "HTTP_HEADER_TIMEOUT_SECS",
        value_name = "HTTP_HEADER_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub http_header_timeout_secs: u64,

    /// Most WebSocket connections held at once; further upgrades get 503 (unset: no cap).
    #[arg(long, env = "MAX_CONNECTIONS", value_name = "MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Largest client message in bytes; a larger one closes the connection with 1009.
    #[arg(
        long,
        env = "MAX_MESSAGE_BYTES",
        value_name = "MAX_MESSAGE_BYTES",
        default_value_t = 65536
    )]
    pub max_message_bytes: usize,

    /// Most messages per second one connection may send; above it closes with 1008 (unset: no limit).
    #[arg(
        long,
        env = "MAX_MESSAGES_PER_SEC",
        value_name = "MAX_MESSAGES_PER_SEC"
    )]
    pub max_messages_per_sec: Option<u32>,

    /// Longest one frame may take to reach a client before it is closed as too slow (1013), in milliseconds.
    #[arg(
        long,
        env = "SEND_TIMEOUT_MS",
        value_name = "SEND_TIMEOUT_MS",
        default_value_t = 5000
    )]
    pub send_timeout_ms: u64,

    /// Comma-separated origins allowed to open WebSockets, e.g. https://app.example.com (empty: any).
    #[arg(
        long,
        env = "ALLOWED_ORIGINS",
        value_name = "ALLOWED_ORIGINS",
        default_value = ""
    )]
    pub allowed_origins: String,

    /// Serve the conformance echo endpoint /ws/echo (for the Autobahn test suite; off by
    /// default). Any value but empty, 0, false, no or off turns it on.
    #[arg(
        long,
        env = "CONFORMANCE_ECHO",
        value_name = "CONFORMANCE_ECHO",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub conformance_echo: bool,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_name = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}
