//! Command-line types and their conversion into the validated configuration: every flag of
//! `serve` and `migrate` also reads the environment variable of the same name, and its value
//! name is that variable, so every error (clap's or the conversion's) names it.

use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{
    AllowedOrigins, Color, Config, ConfigError, Limits, LogFormat, NodeAuth, RedisConfig,
    StoreConfig, Topology,
};

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
    /// How Redis is deployed: single (REDIS_URL), sentinel (REDIS_SENTINELS,
    /// REDIS_MASTER_NAME) or cluster (REDIS_CLUSTER_NODES). The other topologies' variables
    /// must be unset.
    #[arg(
        long,
        env = "REDIS_TOPOLOGY",
        value_name = "REDIS_TOPOLOGY",
        value_enum,
        default_value_t = TopologyKind::Single
    )]
    pub redis_topology: TopologyKind,

    /// Redis URL (redis://[user:password@]host:port[/db]) of the single topology
    /// [default: redis://127.0.0.1:6379].
    #[arg(long, env = "REDIS_URL", value_name = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Sentinels of the sentinel topology, comma-separated host:port.
    #[arg(long, env = "REDIS_SENTINELS", value_name = "REDIS_SENTINELS")]
    pub redis_sentinels: Option<String>,

    /// The master name the sentinels monitor (sentinel topology) [default: switchyard].
    #[arg(long, env = "REDIS_MASTER_NAME", value_name = "REDIS_MASTER_NAME")]
    pub redis_master_name: Option<String>,

    /// Seed nodes of the cluster topology, comma-separated host:port.
    #[arg(long, env = "REDIS_CLUSTER_NODES", value_name = "REDIS_CLUSTER_NODES")]
    pub redis_cluster_nodes: Option<String>,

    /// The ACL user the sentinel and cluster topologies log in to their Redis nodes as (with
    /// REDIS_PASSWORD). The single topology takes it in REDIS_URL.
    #[arg(long, env = "REDIS_USERNAME", value_name = "REDIS_USERNAME")]
    pub redis_username: Option<String>,

    /// The password of the Redis nodes of the sentinel and cluster topologies (their
    /// requirepass, or REDIS_USERNAME's). The single topology takes it in REDIS_URL.
    #[arg(
        long,
        env = "REDIS_PASSWORD",
        value_name = "REDIS_PASSWORD",
        hide_env_values = true
    )]
    pub redis_password: Option<String>,

    /// The database of the sentinel topology's primary [default: 0]. A cluster has only 0;
    /// the single topology takes it in REDIS_URL.
    #[arg(long, env = "REDIS_DB", value_name = "REDIS_DB")]
    pub redis_db: Option<u32>,

    /// The sentinels' own password (their requirepass), sentinel topology.
    #[arg(
        long,
        env = "REDIS_SENTINEL_PASSWORD",
        value_name = "REDIS_SENTINEL_PASSWORD",
        hide_env_values = true
    )]
    pub redis_sentinel_password: Option<String>,

    /// Replicas that must have a counted message's write (Redis WAIT) before its reply is
    /// sent; if they do not within REDIS_TIMEOUT_MS the client is told the outcome is unknown
    /// (resend the same seq) [default: 0 for single, 1 for sentinel and cluster].
    #[arg(
        long,
        env = "REDIS_MIN_REPLICAS_ACKED",
        value_name = "REDIS_MIN_REPLICAS_ACKED"
    )]
    pub redis_min_replicas_acked: Option<u32>,

    /// Deadline for each Redis call and for connecting to Redis, in milliseconds.
    #[arg(
        long,
        env = "REDIS_TIMEOUT_MS",
        value_name = "REDIS_TIMEOUT_MS",
        default_value_t = 1000
    )]
    pub redis_timeout_ms: u64,
}

/// REDIS_TOPOLOGY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TopologyKind {
    /// One Redis at REDIS_URL.
    Single,
    /// A primary and its replicas watched by Redis Sentinel.
    Sentinel,
    /// A Redis Cluster.
    Cluster,
}

impl TopologyKind {
    fn name(self) -> &'static str {
        match self {
            TopologyKind::Single => "single",
            TopologyKind::Sentinel => "sentinel",
            TopologyKind::Cluster => "cluster",
        }
    }
}

/// Where sessions are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// Redis at REDIS_URL: shared by every instance and both colors.
    Redis,
    /// This process's memory: one instance only, lost on exit. Never chosen implicitly.
    Memory,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Check the configuration (these flags and variables, as serving would read them), print
    /// what would be used and exit 0 — or exit 2 naming the bad variable. Connects to nothing.
    #[arg(long)]
    pub check_config: bool,

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

    /// How many instances of this color the deployment runs, exported as
    /// switchyard_desired_replicas for the alert on a color below it (0: not told, no alert).
    #[arg(
        long,
        env = "DESIRED_REPLICAS",
        value_name = "DESIRED_REPLICAS",
        default_value_t = 0
    )]
    pub desired_replicas: u32,

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

impl TryFrom<RedisArgs> for RedisConfig {
    type Error = ConfigError;

    fn try_from(args: RedisArgs) -> Result<Self, ConfigError> {
        let kind = args.redis_topology;
        // A set variable of another topology would be silently ignored: refuse it instead.
        let set = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.trim().is_empty());
        let belongs = [
            ("REDIS_URL", set(&args.redis_url), TopologyKind::Single),
            (
                "REDIS_SENTINELS",
                set(&args.redis_sentinels),
                TopologyKind::Sentinel,
            ),
            (
                "REDIS_MASTER_NAME",
                set(&args.redis_master_name),
                TopologyKind::Sentinel,
            ),
            (
                "REDIS_CLUSTER_NODES",
                set(&args.redis_cluster_nodes),
                TopologyKind::Cluster,
            ),
        ];
        if let Some((variable, _, owner)) =
            belongs.iter().find(|(_, s, owner)| *s && *owner != kind)
        {
            return Err(ConfigError::new(
                variable,
                format!(
                    "belongs to REDIS_TOPOLOGY={} but REDIS_TOPOLOGY is {}: unset it",
                    owner.name(),
                    kind.name()
                ),
            ));
        }
        let required = |variable: &'static str, value: Option<String>| {
            value.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                ConfigError::new(
                    variable,
                    format!("is required with REDIS_TOPOLOGY={}", kind.name()),
                )
            })
        };
        let topology = match kind {
            TopologyKind::Single => Topology::single(
                args.redis_url
                    .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned()),
            )?,
            TopologyKind::Sentinel => Topology::sentinel(
                &required("REDIS_SENTINELS", args.redis_sentinels)?,
                args.redis_master_name
                    .unwrap_or_else(|| "switchyard".to_owned()),
            )?,
            TopologyKind::Cluster => {
                Topology::cluster(&required("REDIS_CLUSTER_NODES", args.redis_cluster_nodes)?)?
            }
        };
        let given = |value: Option<String>| value.filter(|v| !v.is_empty());
        RedisConfig::with_topology(
            topology,
            args.redis_timeout_ms,
            args.redis_min_replicas_acked,
        )?
        .with_auth(NodeAuth {
            username: given(args.redis_username),
            password: given(args.redis_password),
            db: args.redis_db.unwrap_or(0),
            sentinel_password: given(args.redis_sentinel_password),
        })
    }
}

fn secs(variable: &'static str, value: u64) -> Result<Duration, ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(variable, "must be at least 1"));
    }
    Ok(Duration::from_secs(value))
}

impl TryFrom<ServeArgs> for Config {
    type Error = ConfigError;

    fn try_from(args: ServeArgs) -> Result<Self, ConfigError> {
        let ip: IpAddr = args.bind.parse().map_err(|_| {
            ConfigError::new(
                "BIND",
                format!(
                    "{:?} is not an IP address (e.g. 0.0.0.0 or 127.0.0.1)",
                    args.bind
                ),
            )
        })?;
        let store = match args.store {
            StoreKind::Memory => StoreConfig::Memory,
            StoreKind::Redis => StoreConfig::Redis(RedisConfig::try_from(args.redis)?),
        };
        let max_message_bytes = NonZeroUsize::new(args.max_message_bytes)
            .ok_or_else(|| ConfigError::new("MAX_MESSAGE_BYTES", "must be at least 1"))?;
        let max_connections = match args.max_connections {
            None => None,
            Some(n) => Some(NonZeroUsize::new(n).ok_or_else(|| {
                ConfigError::new(
                    "MAX_CONNECTIONS",
                    "must be at least 1 (unset it for no cap)",
                )
            })?),
        };
        let max_messages_per_sec = match args.max_messages_per_sec {
            None => None,
            Some(n) => Some(NonZeroU32::new(n).ok_or_else(|| {
                ConfigError::new(
                    "MAX_MESSAGES_PER_SEC",
                    "must be at least 1 (unset it for no limit)",
                )
            })?),
        };
        if args.send_timeout_ms == 0 {
            return Err(ConfigError::new("SEND_TIMEOUT_MS", "must be at least 1"));
        }
        let drain_timeout = secs("DRAIN_TIMEOUT_SECS", args.drain_timeout_secs)?;
        let drain_spread = Duration::from_millis(args.drain_spread_ms);
        if drain_spread >= drain_timeout {
            return Err(ConfigError::new(
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
            desired_replicas: args.desired_replicas,
            allowed_origins: AllowedOrigins::parse(&args.allowed_origins)?,
            log_format: args.log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

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
        assert_eq!(config.desired_replicas, 0);
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
    fn serve_and_migrate_check_redis_settings_alike() {
        let migrate = |args: &[&str]| {
            let mut argv = vec!["switchyard", "migrate"];
            argv.extend_from_slice(args);
            let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
            let Command::Migrate(migrate) = cli.command else {
                unreachable!("the test parses `migrate`")
            };
            RedisConfig::try_from(migrate.redis).map_err(|e| e.to_string())
        };
        for (flag, value, variable) in [
            ("--redis-timeout-ms", "0", "REDIS_TIMEOUT_MS"),
            ("--redis-url", "127.0.0.1:6379", "REDIS_URL"),
        ] {
            let serve = error_of(&[flag, value]);
            assert!(serve.contains(variable), "{serve}");
            let migrate = migrate(&[flag, value]).expect_err("refused");
            assert_eq!(migrate, serve);
        }
        let redis = migrate(&["--redis-timeout-ms", "250"]).expect("valid");
        assert_eq!(redis.timeout, Duration::from_millis(250));
    }

    fn redis_of(args: &[&str]) -> Result<RedisConfig, String> {
        let config = parse(args)?;
        match config.store {
            StoreConfig::Redis(redis) => Ok(redis),
            StoreConfig::Memory => Err("memory store".into()),
        }
    }

    #[test]
    fn the_single_topology_is_the_default_without_replica_acknowledgement() {
        let redis = redis_of(&[]).expect("defaults");
        assert_eq!(
            redis.topology,
            Topology::Single {
                url: "redis://127.0.0.1:6379".into()
            }
        );
        assert_eq!(redis.min_replicas_acked, 0);
    }

    #[test]
    fn sentinel_nodes_take_a_login_and_a_database() {
        let redis = redis_of(&[
            "--redis-topology",
            "sentinel",
            "--redis-sentinels",
            "s:26379",
            "--redis-username",
            "app",
            "--redis-password",
            "node-secret",
            "--redis-db",
            "4",
            "--redis-sentinel-password",
            "sentinel-secret",
        ])
        .expect("valid");
        assert_eq!(
            redis.auth,
            NodeAuth {
                username: Some("app".into()),
                password: Some("node-secret".into()),
                db: 4,
                sentinel_password: Some("sentinel-secret".into()),
            }
        );
        let shown = format!("{redis:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn sentinel_and_cluster_wait_for_one_replica_unless_told() {
        let sentinel = redis_of(&[
            "--redis-topology",
            "sentinel",
            "--redis-sentinels",
            "10.0.0.1:26379,10.0.0.2:26379",
        ])
        .expect("valid");
        assert_eq!(
            sentinel.topology,
            Topology::Sentinel {
                sentinels: vec!["10.0.0.1:26379".into(), "10.0.0.2:26379".into()],
                master_name: "switchyard".into()
            }
        );
        assert_eq!(sentinel.min_replicas_acked, 1);
        let cluster = redis_of(&[
            "--redis-topology",
            "cluster",
            "--redis-cluster-nodes",
            "n1:7000",
            "--redis-min-replicas-acked",
            "0",
        ])
        .expect("valid");
        assert_eq!(
            cluster.topology,
            Topology::Cluster {
                nodes: vec!["n1:7000".into()]
            }
        );
        assert_eq!(cluster.min_replicas_acked, 0);
    }

    #[test]
    fn a_variable_of_another_topology_is_refused_by_name() {
        for (args, variable) in [
            (vec!["--redis-sentinels", "s:26379"], "REDIS_SENTINELS"),
            (vec!["--redis-master-name", "m"], "REDIS_MASTER_NAME"),
            (
                vec!["--redis-cluster-nodes", "n:7000"],
                "REDIS_CLUSTER_NODES",
            ),
            (
                vec!["--redis-topology", "sentinel", "--redis-url", "redis://r"],
                "REDIS_URL",
            ),
            (
                vec![
                    "--redis-topology",
                    "cluster",
                    "--redis-sentinels",
                    "s:26379",
                    "--redis-cluster-nodes",
                    "n:7000",
                ],
                "REDIS_SENTINELS",
            ),
            (vec!["--redis-topology", "sentinel"], "REDIS_SENTINELS"),
            (vec!["--redis-topology", "cluster"], "REDIS_CLUSTER_NODES"),
            (
                vec!["--redis-topology", "cluster", "--redis-cluster-nodes", "n"],
                "REDIS_CLUSTER_NODES",
            ),
            (vec!["--redis-topology", "ring"], "REDIS_TOPOLOGY"),
            (
                vec!["--redis-min-replicas-acked", "many"],
                "REDIS_MIN_REPLICAS_ACKED",
            ),
            (vec!["--redis-password", "p"], "REDIS_PASSWORD"),
            (vec!["--redis-db", "2"], "REDIS_DB"),
            (
                vec![
                    "--redis-topology",
                    "cluster",
                    "--redis-cluster-nodes",
                    "n:7000",
                    "--redis-db",
                    "1",
                ],
                "REDIS_DB",
            ),
            (
                vec![
                    "--redis-topology",
                    "cluster",
                    "--redis-cluster-nodes",
                    "n:7000",
                    "--redis-sentinel-password",
                    "p",
                ],
                "REDIS_SENTINEL_PASSWORD",
            ),
            (
                vec![
                    "--redis-topology",
                    "sentinel",
                    "--redis-sentinels",
                    "s:26379",
                    "--redis-username",
                    "app",
                ],
                "REDIS_PASSWORD",
            ),
            (
                vec![
                    "--redis-topology",
                    "sentinel",
                    "--redis-sentinels",
                    "s:26379",
                    "--redis-db",
                    "x",
                ],
                "REDIS_DB",
            ),
        ] {
            let error = error_of(&args);
            assert!(error.contains(variable), "{args:?}: {error}");
        }
    }

    #[test]
    fn origins_are_parsed_and_checked() {
        let config = parse(&[
            "--allowed-origins",
            "https://a.example, http://b.example:8080/",
        ])
        .expect("valid origins");
        let allowed = |o: &str| config.allowed_origins.allows(Some(o.as_bytes()));
        assert!(allowed("https://a.example"));
        assert!(allowed("http://b.example:8080"));
        assert!(!allowed("https://evil.example"));
        assert!(config.allowed_origins.allows(None));
        assert!(error_of(&["--allowed-origins", "a.example"]).contains("ALLOWED_ORIGINS"));
    }

    #[test]
    fn no_origins_allow_any() {
        let config = parse(&[]).expect("defaults");
        assert!(config.allowed_origins.allows(Some(b"https://x.example")));
    }
}
