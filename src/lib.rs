//! switchyard: a blue-green WebSocket application server with sessions in Redis.
//!
//! Dependency direction: `ws::protocol`, `ws::close`, `store` and `config` know nothing of
//! axum's serving; `hub`, `heartbeat`, `lifecycle` and `metrics` are the shared machinery;
//! `ws` and `http` depend on `state` and the layers below; only `app` wires everything; only
//! `main` knows `app` and `cli`. `migrate` is the `switchyard migrate` command and the
//! readiness gate on it. `live` keeps the sessions of open connections from expiring. `probe` is the `switchyard healthcheck` command's one HTTP GET.

pub mod app;
pub mod cli;
pub mod config;
pub mod heartbeat;
pub mod http;
pub mod hub;
pub mod lifecycle;
pub mod live;
pub mod metrics;
pub mod migrate;
pub mod probe;
pub mod signals;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod ws;

pub use app::{App, DrainReport};
pub use cli::Cli;
pub use config::Config;
