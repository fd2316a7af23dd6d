//! Validated configuration: turns parsed flags into domain types (durations, non-zero
//! limits, parsed origins). Every error names the environment variable at fault.

use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use axum::http::HeaderValue;
use serde::Serialize;

use crate::cli::{LogFormat, ServeArgs, StoreKind};

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
    pub allowed_origins: AllowedOrigins,
    pub log_format: LogFormat,
}

/// Where sessions live.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Redis { url: String, timeout: Duration },
    Memory,
}

/// Per-connection and per-process bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: Option<NonZeroUsize>,
    pub max_message_bytes: NonZeroUsize,
    pub max_messages_per_sec: Option<NonZeroU32>,
    pub send_timeout: Duration,
}

/// Origins allowed to open WebSockets; empty allows any.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(Vec<HeaderValue>);

impl AllowedOrigins {
    /// Whether a request with this `Origin` header (or none, for non-browser clients) may upgrade.
    pub fn allows(&self, origin: Option<&HeaderValue>) -> bool {
        match origin {
            _ if self.0.is_empty() => true,
            Some(origin) => self.0.iter().any(|allowed| allowed == origin),
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

fn invalid(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

fn secs(variable: &'static str, value: u64) -> Result<Duration, ConfigError> {
    if value == 0 {
        return Err(invalid(variable, "must be at least 1"));
    }
    Ok(Duration::from_secs(value))
}

impl TryFrom<ServeArgs> for Config {
    type Error = ConfigError;

    fn try_from(args: ServeArgs) -> Result<Self, ConfigError> {
        let ip: IpAddr = args.bind.parse().map_err(|_| {
            invalid(
                "BIND",
                format!(
                    "{:?} is not an IP address (e.g. 0.0.0.0 or 127.0.0.1)",
                    args.bind
                ),
            )
        })?;
        let store = match args.store {
            StoreKind::Memory => StoreConfig::Memory,
            StoreKind::Redis => {
                if !(args.redis.redis_url.starts_with("redis://")
                    || args.redis.redis_url.starts_with("rediss://")
                    || args.redis.redis_url.starts_with("redis+unix://")
                    || args.redis.redis_url.starts_with("unix://"))
                {
                    return Err(invalid(
                        "REDIS_URL",
                        format!("{:?} is not a redis:// URL", args.redis.redis_url),
                    ));
                }
                if args.redis.redis_timeout_ms == 0 {
                    return Err(invalid("REDIS_TIMEOUT_MS", "must be at least 1"));
                }
                StoreConfig::Redis {
                    url: args.redis.redis_url,
                    timeout: Duration::from_millis(args.redis.redis_timeout_ms),
                }
            }
        };
        let max_message_bytes = NonZeroUsize::new(args.max_message_bytes)
            .ok_or_else(|| invalid("MAX_MESSAGE_BYTES", "must be at least 1"))?;
        let max_connections = match args.max_connections {
            None => None,
            Some(n) => Some(NonZeroUsize::new(n).ok_or_else(|| {
                invalid(
                    "MAX_CONNECTIONS",
                    "must be at least 1 (unset it for no cap)",
                )
            })?),
        };
        let max_messages_per_sec = match args.max_messages_per_sec {
            None => None,
            Some(n) => Some(NonZeroU32::new(n).ok_or_else(|| {
                invalid(
                    "MAX_MESSAGES_PER_SEC",
                    "must be at least 1 (unset it for no limit)",
                )
            })?),
        };
        if args.send_timeout_ms == 0 {
            return Err(invalid("SEND_TIMEOUT_MS", "must be at least 1"));
        }
        let drain_timeout = secs("DRAIN_TIMEOUT_SECS", args.drain_timeout_secs)?;
        let drain_spread = Duration::from_millis(args.drain_spread_ms);
        if drain_spread >= drain_timeout {
            return Err(invalid(
                "DRAIN_SPREAD_MS",
                format!(
                    "{} ms must be shorter than DRAIN_TIMEOUT_SECS ({} s)",
                    args.drain_spread_ms, args.drain_timeout_secs
                ),
            ));
        }
        Ok(Config {
            color: args.color,
            addr: SocketAddr::new(ip, args.port),
            store,
            heartbeat_interval: secs("HEARTBEAT_INTERVAL_SECS", args.heartbeat_interval_secs)?,
            session_ttl: secs("SESSION_TTL_SECS", args.session_ttl_secs)?,
            drain_timeout,
            drain_spread,
            http_header_timeout: secs("HTTP_HEADER_TIMEOUT_SECS", args.http_header_timeout_secs)?,
            conformance_echo: args.conformance_echo,
            limits: Limits {
                max_connections,
                max_message_bytes,
                max_messages_per_sec,
                send_timeout: Duration::from_millis(args.send_timeout_ms),
            },
            allowed_origins: parse_origins(&args.allowed_origins)?,
            log_format: args.log_format,
        })
    }
}

fn parse_origins(list: &str) -> Result<AllowedOrigins, ConfigError> {
    let mut origins = Vec::new();
    for origin in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let origin = origin.trim_end_matches('/');
        let scheme_ok = origin.starts_with("http://") || origin.starts_with("https://");
        let host = origin.split_once("://").map_or("", |(_, rest)| rest);
        if !scheme_ok || host.is_empty() || host.contains('/') {
            return Err(invalid(
                "ALLOWED_ORIGINS",
                format!("{origin:?} is not an origin like https://app.example.com[:port]"),
            ));
        }
        let value = HeaderValue::from_str(origin).map_err(|_| {
            invalid(
                "ALLOWED_ORIGINS",
                format!("{origin:?} is not a valid header value"),
            )
        })?;
        origins.push(value);
    }
    Ok(AllowedOrigins(origins))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut argv = vec!["switchyard", "serve"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let Command::Serve(serve) = cli.command else {
            unreachable!("the test parses `serve`")
        };
        Config::try_from(serve).map_err(|e| e.to_string())
    }

    fn error_of(args: &[&str]) -> String {
        parse(args).expect_err("configuration should be rejected")
    }

    #[test]
    fn defaults_match_the_design() {
        let config = parse(&[]).expect("defaults are valid");
        assert_eq!(config.color, Color::Blue);
        assert_eq!(config.addr.port(), 8000);
        assert_eq!(config.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(config.session_ttl, Duration::from_secs(3600));
        assert_eq!(config.drain_timeout, Duration::from_secs(25));
        assert_eq!(config.drain_spread, Duration::from_millis(2000));
        assert_eq!(config.limits.max_message_bytes.get(), 65536);
        assert!(config.limits.max_connections.is_none());
        assert_eq!(config.http_header_timeout, Duration::from_secs(10));
        assert!(!config.conformance_echo);
        assert!(matches!(config.store, StoreConfig::Redis { .. }));
    }

    #[test]
    fn a_port_that_is_not_a_number_names_port() {
        assert!(error_of(&["--port", "abc"]).contains("PORT"));
    }

    #[test]
    fn an_unknown_color_names_color() {
        assert!(error_of(&["--color", "red"]).contains("COLOR"));
    }

    #[test]
    fn a_bind_that_is_not_an_ip_names_bind() {
        assert!(error_of(&["--bind", "localhost"]).contains("BIND"));
    }

    #[test]
    fn a_zero_heartbeat_names_the_variable() {
        assert!(error_of(&["--heartbeat-interval-secs", "0"]).contains("HEARTBEAT_INTERVAL_SECS"));
    }

    #[test]
    fn a_zero_session_ttl_names_the_variable() {
        assert!(error_of(&["--session-ttl-secs", "0"]).contains("SESSION_TTL_SECS"));
    }

    #[test]
    fn the_conformance_echo_is_a_switch() {
        assert!(
            parse(&["--conformance-echo"])
                .expect("valid")
                .conformance_echo
        );
    }

    #[test]
    fn a_zero_header_timeout_names_the_variable() {
        let error = error_of(&["--http-header-timeout-secs", "0"]);
        assert!(error.contains("HTTP_HEADER_TIMEOUT_SECS"), "{error}");
        let error = error_of(&["--http-header-timeout-secs", "soon"]);
        assert!(error.contains("HTTP_HEADER_TIMEOUT_SECS"), "{error}");
    }

    #[test]
    fn a_spread_longer_than_the_timeout_names_drain_spread() {
        let error = error_of(&["--drain-timeout-secs", "2", "--drain-spread-ms", "2000"]);
        assert!(error.contains("DRAIN_SPREAD_MS"), "{error}");
    }

    #[test]
    fn zero_limits_name_their_variables() {
        assert!(error_of(&["--max-connections", "0"]).contains("MAX_CONNECTIONS"));
        assert!(error_of(&["--max-message-bytes", "0"]).contains("MAX_MESSAGE_BYTES"));
        assert!(error_of(&["--max-messages-per-sec", "0"]).contains("MAX_MESSAGES_PER_SEC"));
        assert!(error_of(&["--send-timeout-ms", "0"]).contains("SEND_TIMEOUT_MS"));
    }

    #[test]
    fn a_redis_url_without_scheme_names_redis_url() {
        assert!(error_of(&["--redis-url", "127.0.0.1:6379"]).contains("REDIS_URL"));
    }

    #[test]
    fn origins_are_parsed_and_checked() {
        let config = parse(&[
            "--allowed-origins",
            "https://a.example, http://b.example:8080/",
        ])
        .expect("valid origins");
        let allowed = |o: &str| {
            config
                .allowed_origins
                .allows(Some(&HeaderValue::from_str(o).expect("header")))
        };
        assert!(allowed("https://a.example"));
        assert!(allowed("http://b.example:8080"));
        assert!(!allowed("https://evil.example"));
        assert!(config.allowed_origins.allows(None));
        assert!(error_of(&["--allowed-origins", "a.example"]).contains("ALLOWED_ORIGINS"));
    }

    #[test]
    fn no_origins_allow_any() {
        let config = parse(&[]).expect("defaults");
        assert!(
            config
                .allowed_origins
                .allows(Some(&HeaderValue::from_static("https://x.example")))
        );
    }
}
