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

impl Config {
    /// What `serve` would use, on one line without secrets (`serve --check-config`).
    pub fn summary(&self) -> String {
        let store = match &self.store {
            StoreConfig::Memory => "memory".to_owned(),
            StoreConfig::Redis(redis) => format!(
                "redis, REDIS_TOPOLOGY={} ({}), REDIS_MIN_REPLICAS_ACKED={}",
                redis.topology.name(),
                redis.topology,
                redis.min_replicas_acked
            ),
        };
        format!(
            "color {}, listening on {}, store {store}, drain within {} s",
            self.color.as_str(),
            self.addr,
            self.drain_timeout.as_secs()
        )
    }
}

/// Where sessions live.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Redis(RedisConfig),
    Memory,
}

/// Where Redis is, how it is deployed, and the one deadline of each call to it (`serve` and
/// `migrate`).
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub topology: Topology,
    /// REDIS_TIMEOUT_MS, at least 1 ms.
    pub timeout: Duration,
    /// REDIS_MIN_REPLICAS_ACKED: replicas that must have a counted message's write (`WAIT`)
    /// before its reply is sent; 0 sends the reply as soon as the primary has it.
    pub min_replicas_acked: u32,
    /// How the sentinel and cluster topologies log in to their nodes (the single topology
    /// carries this in REDIS_URL).
    pub auth: NodeAuth,
}

/// REDIS_USERNAME, REDIS_PASSWORD, REDIS_DB and REDIS_SENTINEL_PASSWORD: the credentials of
/// the Redis nodes a sentinel names or a cluster is made of, the database of a sentinel's
/// primary, and the sentinels' own password. Passwords never appear in `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NodeAuth {
    /// The ACL user (with REDIS_PASSWORD); `None` logs in as `default`.
    pub username: Option<String>,
    pub password: Option<String>,
    /// The database of the sentinel topology's primary (a cluster has only 0).
    pub db: u32,
    /// `requirepass` of the sentinels themselves.
    pub sentinel_password: Option<String>,
}

impl std::fmt::Debug for NodeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |secret: &Option<String>| secret.as_ref().map(|_| "***");
        f.debug_struct("NodeAuth")
            .field("username", &self.username)
            .field("password", &hidden(&self.password))
            .field("db", &self.db)
            .field("sentinel_password", &hidden(&self.sentinel_password))
            .finish()
    }
}

/// REDIS_TOPOLOGY and the variables of that topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One Redis at REDIS_URL (a redis://, rediss://, redis+unix:// or unix:// URL).
    Single { url: String },
    /// The primary named REDIS_MASTER_NAME, as REDIS_SENTINELS (`host:port`s) report it.
    Sentinel {
        sentinels: Vec<String>,
        master_name: String,
    },
    /// A Redis Cluster reached through REDIS_CLUSTER_NODES (seed `host:port`s).
    Cluster { nodes: Vec<String> },
}

impl Topology {
    /// Its REDIS_TOPOLOGY value.
    pub fn name(&self) -> &'static str {
        match self {
            Topology::Single { .. } => "single",
            Topology::Sentinel { .. } => "sentinel",
            Topology::Cluster { .. } => "cluster",
        }
    }

    /// REDIS_MIN_REPLICAS_ACKED when unset: 0 for one Redis, 1 where replicas exist.
    pub fn default_min_replicas_acked(&self) -> u32 {
        match self {
            Topology::Single { .. } => 0,
            Topology::Sentinel { .. } | Topology::Cluster { .. } => 1,
        }
    }
}

impl RedisConfig {
    /// A single Redis at `url` (REDIS_URL), no replica acknowledgement; checks REDIS_URL's
    /// scheme and that REDIS_TIMEOUT_MS is at least 1.
    pub fn new(url: String, timeout_ms: u64) -> Result<Self, ConfigError> {
        Self::with_topology(Topology::single(url)?, timeout_ms, None)
    }

    /// `topology` with REDIS_TIMEOUT_MS and REDIS_MIN_REPLICAS_ACKED (its default when `None`).
    pub fn with_topology(
        topology: Topology,
        timeout_ms: u64,
        min_replicas_acked: Option<u32>,
    ) -> Result<Self, ConfigError> {
        if timeout_ms == 0 {
            return Err(ConfigError::new("REDIS_TIMEOUT_MS", "must be at least 1"));
        }
        Ok(RedisConfig {
            min_replicas_acked: min_replicas_acked
                .unwrap_or_else(|| topology.default_min_replicas_acked()),
            topology,
            timeout: Duration::from_millis(timeout_ms),
            auth: NodeAuth::default(),
        })
    }

    /// With the nodes' credentials (`NodeAuth`), checked against the topology: the single
    /// topology takes them in REDIS_URL, a cluster has no database but 0 and no sentinels.
    pub fn with_auth(self, auth: NodeAuth) -> Result<Self, ConfigError> {
        let topology = self.topology.name();
        let refuse = |variable, problem: String| Err(ConfigError::new(variable, problem));
        match &self.topology {
            Topology::Single { .. } => {
                let set = [
                    ("REDIS_USERNAME", auth.username.is_some()),
                    ("REDIS_PASSWORD", auth.password.is_some()),
                    ("REDIS_DB", auth.db != 0),
                    ("REDIS_SENTINEL_PASSWORD", auth.sentinel_password.is_some()),
                ];
                if let Some((variable, _)) = set.iter().find(|(_, set)| *set) {
                    return refuse(
                        variable,
                        "is for REDIS_TOPOLOGY=sentinel or cluster: with single, put it in REDIS_URL (redis://user:password@host:port/db)".to_owned(),
                    );
                }
            }
            Topology::Cluster { .. } if auth.db != 0 => {
                return refuse(
                    "REDIS_DB",
                    format!("a Redis Cluster has only database 0 (REDIS_TOPOLOGY={topology})"),
                );
            }
            Topology::Cluster { .. } if auth.sentinel_password.is_some() => {
                return refuse(
                    "REDIS_SENTINEL_PASSWORD",
                    format!("belongs to REDIS_TOPOLOGY=sentinel, not {topology}: unset it"),
                );
            }
            Topology::Sentinel { .. } | Topology::Cluster { .. } => {}
        }
        if auth.username.is_some() && auth.password.is_none() {
            return refuse(
                "REDIS_PASSWORD",
                "is required with REDIS_USERNAME".to_owned(),
            );
        }
        Ok(RedisConfig { auth, ..self })
    }
}

impl Topology {
    /// REDIS_URL, its scheme checked.
    pub fn single(url: String) -> Result<Self, ConfigError> {
        const SCHEMES: [&str; 4] = ["redis://", "rediss://", "redis+unix://", "unix://"];
        if !SCHEMES.iter().any(|scheme| url.starts_with(scheme)) {
            return Err(ConfigError::new(
                "REDIS_URL",
                format!("{url:?} is not a redis:// URL"),
            ));
        }
        Ok(Topology::Single { url })
    }

    /// REDIS_SENTINELS and REDIS_MASTER_NAME.
    pub fn sentinel(sentinels: &str, master_name: String) -> Result<Self, ConfigError> {
        if master_name.is_empty() || master_name.contains(char::is_whitespace) {
            return Err(ConfigError::new(
                "REDIS_MASTER_NAME",
                format!("{master_name:?} is not a Sentinel master name"),
            ));
        }
        Ok(Topology::Sentinel {
            sentinels: host_ports("REDIS_SENTINELS", sentinels)?,
            master_name,
        })
    }

    /// REDIS_CLUSTER_NODES.
    pub fn cluster(nodes: &str) -> Result<Self, ConfigError> {
        Ok(Topology::Cluster {
            nodes: host_ports("REDIS_CLUSTER_NODES", nodes)?,
        })
    }
}

impl std::fmt::Display for Topology {
    /// Where this topology's Redis is, without passwords, for logs and errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Topology::Single { url } => write!(f, "{}", redacted(url)),
            Topology::Sentinel {
                sentinels,
                master_name,
            } => write!(
                f,
                "primary {master_name:?} of sentinels {}",
                sentinels.join(",")
            ),
            Topology::Cluster { nodes } => write!(f, "cluster of {}", nodes.join(",")),
        }
    }
}

/// A Redis URL without its password, for logs.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// A comma-separated, non-empty list of `host:port`.
fn host_ports(variable: &'static str, list: &str) -> Result<Vec<String>, ConfigError> {
    let mut nodes = Vec::new();
    for node in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let valid = node.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid || node.contains("://") {
            return Err(ConfigError::new(
                variable,
                format!("{node:?} is not host:port"),
            ));
        }
        nodes.push(node.to_owned());
    }
    if nodes.is_empty() {
        return Err(ConfigError::new(
            variable,
            "needs at least one host:port (comma-separated)",
        ));
    }
    Ok(nodes)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_url_is_logged_without_its_password() {
        assert_eq!(
            redacted("redis://:secret@db:6379/0"),
            "redis://***@db:6379/0"
        );
        assert_eq!(redacted("redis://user:p@ss@db"), "redis://***@db");
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn node_lists_are_host_ports() {
        assert_eq!(
            host_ports("REDIS_SENTINELS", " a:1, b:26379 ,").expect("valid"),
            ["a:1", "b:26379"]
        );
        for bad in ["", "a", "a:0", ":1", "a:x", "redis://a:1"] {
            let error = host_ports("REDIS_SENTINELS", bad).expect_err(bad);
            assert_eq!(error.variable, "REDIS_SENTINELS");
        }
    }
}
