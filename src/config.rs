//! The validated configuration: domain types (durations, non-zero limits, checked origins)
//! that `cli` builds from the flags, naming the variable at fault when a value cannot be used.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use serde::Serialize;

/// The deployment color an instance belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Blue,
    Green,
}

impl Color {
    pub fn as_str(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }
}

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub color: Color,
    pub addr: SocketAddr,
    pub store: StoreConfig,
    pub heartbeat_interval: Duration,
    pub session_ttl: Duration,
    pub drain_timeout: Duration,
    pub drain_spread: Duration,
    /// Longest a client may take to send a request's headers.
    pub http_header_timeout: Duration,
    /// Whether /ws/echo (the conformance echo endpoint) is served.
    pub conformance_echo: bool,
    pub limits: Limits,
    /// DESIRED_REPLICAS: how many instances of this color the deployment runs (0: not told);
    /// only exported, for the alert on a color below it.
    pub desired_replicas: u32,
    pub allowed_origins: AllowedOrigins,
    pub log_format: LogFormat,
}

/// Where sessions live.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Redis(RedisConfig),
    Memory,
}

/// Where Redis is and the one deadline of each call to it (`serve` and `migrate`).
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// A redis://, rediss://, redis+unix:// or unix:// URL.
    pub url: String,
    /// REDIS_TIMEOUT_MS, at least 1 ms.
    pub timeout: Duration,
}

impl RedisConfig {
    /// Checks REDIS_URL's scheme and that REDIS_TIMEOUT_MS is at least 1.
    pub fn new(url: String, timeout_ms: u64) -> Result<Self, ConfigError> {
        const SCHEMES: [&str; 4] = ["redis://", "rediss://", "redis+unix://", "unix://"];
        if !SCHEMES.iter().any(|scheme| url.starts_with(scheme)) {
            return Err(ConfigError::new(
                "REDIS_URL",
                format!("{url:?} is not a redis:// URL"),
            ));
        }
        if timeout_ms == 0 {
            return Err(ConfigError::new("REDIS_TIMEOUT_MS", "must be at least 1"));
        }
        Ok(RedisConfig {
            url,
            timeout: Duration::from_millis(timeout_ms),
        })
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for log shippers and tests).
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Per-connection and per-process bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: Option<NonZeroUsize>,
    pub max_message_bytes: NonZeroUsize,
    pub max_messages_per_sec: Option<NonZeroU32>,
    pub send_timeout: Duration,
}

/// Origins allowed to open WebSockets, each `scheme://host[:port]` without a trailing slash;
/// empty allows any.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(Vec<String>);

impl AllowedOrigins {
    /// Parses ALLOWED_ORIGINS: comma-separated `http(s)://host[:port]`, a trailing slash ignored.
    pub fn parse(list: &str) -> Result<Self, ConfigError> {
        let mut origins = Vec::new();
        for origin in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let origin = origin.trim_end_matches('/');
            let scheme_ok = origin.starts_with("http://") || origin.starts_with("https://");
            let host = origin.split_once("://").map_or("", |(_, rest)| rest);
            if !scheme_ok || host.is_empty() || host.contains('/') {
                return Err(ConfigError::new(
                    "ALLOWED_ORIGINS",
                    format!("{origin:?} is not an origin like https://app.example.com[:port]"),
                ));
            }
            // What an HTTP header value may hold (no control characters but tab).
            if origin.bytes().any(|b| (b < 32 && b != b'\t') || b == 127) {
                return Err(ConfigError::new(
                    "ALLOWED_ORIGINS",
                    format!("{origin:?} is not a valid header value"),
                ));
            }
            origins.push(origin.to_owned());
        }
        Ok(AllowedOrigins(origins))
    }

    /// Whether a request with this `Origin` header value (or none, for non-browser clients)
    /// may upgrade.
    pub fn allows(&self, origin: Option<&[u8]>) -> bool {
        match origin {
            _ if self.0.is_empty() => true,
            Some(origin) => self.0.iter().any(|allowed| allowed.as_bytes() == origin),
            None => true,
        }
    }
}

/// A configuration value that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        ConfigError {
            variable,
            problem: problem.into(),
        }
    }
}
