//! switchyard-load: scale runs that k6 and Locust cannot do on two cores. Each scenario prints
//! a progress line every second on stderr and one JSON result on stdout.

mod checker;
mod client;
mod report;
mod scenarios;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Load generator for switchyard (protocol v1).
#[derive(Debug, Parser)]
#[command(name = "switchyard-load", version, about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

/// Options of the checker's clients (promote, clients).
#[derive(Debug, Clone, Args)]
struct Checker {
    /// Where the sessions are counted at the end: redis://URL, HOST:PORT, PORT (127.0.0.1),
    /// cluster:HOST:PORT[,HOST:PORT...] or exec:CONTAINER (redis-cli in that container).
    #[arg(long)]
    redis: checker::Counts,
    /// Pause between one client's messages, in milliseconds.
    #[arg(long, default_value_t = 200)]
    interval_ms: u64,
}

/// Options every scenario shares.
#[derive(Debug, Clone, Args)]
struct Common {
    /// WebSocket endpoint, e.g. ws://127.0.0.1:8000/ws/chat/ (through Traefik: ws://127.0.0.1:8080/ws/chat/).
    #[arg(long, default_value = "ws://127.0.0.1:8000/ws/chat/")]
    url: String,
    /// Number of WebSocket sessions.
    #[arg(long, short = 'n', default_value_t = 100)]
    connections: usize,
    /// Connection attempts in flight at once while opening sessions.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Source addresses 127.0.X.Y are spread over this many hosts (avoids ephemeral-port exhaustion).
    #[arg(long, default_value_t = 64)]
    source_addresses: usize,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Hold N idle sessions; report the connect rate and the server's RSS per session.
    Hold {
        #[command(flatten)]
        common: Common,
        /// PID of the server, to read its RSS from /proc.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Seconds to hold the sessions after they are open.
        #[arg(long, default_value_t = 3)]
        hold_secs: u64,
    },
    /// Closed-loop numbered messages; throughput and latency percentiles; every count checked.
    Echo {
        #[command(flatten)]
        common: Common,
        /// Seconds to measure (after all sessions are open).
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
    },
    /// Spread between the first and last receipt of each heartbeat.
    Fanout {
        #[command(flatten)]
        common: Common,
        /// Heartbeats to observe (the server's HEARTBEAT_INTERVAL_SECS sets the pace).
        #[arg(long, default_value_t = 3)]
        beats: usize,
    },
    /// SIGTERM the server under N sessions: time until every client has its 1001, and until exit.
    Drain {
        #[command(flatten)]
        common: Common,
        /// PID of the server to signal.
        #[arg(long)]
        server_pid: u32,
    },
    /// Open N sessions with one message each, close them, and resume them all at once.
    Resume {
        #[command(flatten)]
        common: Common,
    },
    /// Clients through Traefik sending numbered messages while a promote command runs.
    Promote {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        checker: Checker,
        /// The deploy to run under load, e.g. "scripts/promote.sh".
        #[arg(long)]
        promote_cmd: String,
        /// Seconds of load before and after the promote.
        #[arg(long, default_value_t = 3)]
        settle_secs: u64,
    },
    /// Clients sending numbered messages until a stop file appears, for a test that does
    /// things to the stack meanwhile; the verdict (nothing lost or doubled) on stdout.
    Clients {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        checker: Checker,
        /// Created once every client has its session.
        #[arg(long)]
        ready_file: std::path::PathBuf,
        /// The clients finish their message in flight and stop once this file exists.
        #[arg(long)]
        stop_file: std::path::PathBuf,
        /// Rewritten every 100 ms: {"connected", "closes", "failed_connects", "acked"}.
        #[arg(long)]
        progress_file: std::path::PathBuf,
        /// Give up (exit 1) when no stop file has appeared after this many seconds.
        #[arg(long, default_value_t = 600)]
        max_secs: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let result = match Cli::parse().scenario {
        Scenario::Hold {
            common,
            server_pid,
            hold_secs,
        } => scenarios::hold(&common, server_pid, Duration::from_secs(hold_secs)).await?,
        Scenario::Echo {
            common,
            duration_secs,
        } => scenarios::echo(&common, Duration::from_secs(duration_secs)).await?,
        Scenario::Fanout { common, beats } => scenarios::fanout(&common, beats).await?,
        Scenario::Drain { common, server_pid } => scenarios::drain(&common, server_pid).await?,
        Scenario::Resume { common } => scenarios::resume(&common).await?,
        Scenario::Promote {
            common,
            checker,
            promote_cmd,
            settle_secs,
        } => {
            scenarios::promote(
                &common,
                &promote_cmd,
                &checker.redis,
                Duration::from_millis(checker.interval_ms),
                Duration::from_secs(settle_secs),
            )
            .await?
        }
        Scenario::Clients {
            common,
            checker,
            ready_file,
            stop_file,
            progress_file,
            max_secs,
        } => {
            let files = scenarios::Files {
                ready: ready_file,
                stop: stop_file,
                progress: progress_file,
            };
            scenarios::clients(
                &common,
                &files,
                &checker.redis,
                Duration::from_millis(checker.interval_ms),
                Duration::from_secs(max_secs),
            )
            .await?
        }
    };
    println!("{result}");
    Ok(())
}
