//! switchyard: a blue-green WebSocket application server with sessions in Redis.
//!
//! Dependency direction, without cycles (tests/it/layering.rs checks it): `config` depends on
//! nothing here; `ws::protocol`, `ws::close`, `store`, `config`, `tick`, `hub`, `heartbeat`,
//! `live` and `metrics` know nothing of axum; `metrics` takes label values and knows nothing
//! of `ws`; `hub`, `heartbeat`, `lifecycle`, `live` and `metrics` are the shared machinery
//! (`tick` is what the heartbeat hands every connection through the hub); `ws` and `http`
//! depend on `state` and the layers below; only `app` wires everything; `cli` turns flags into
//! `config` for `main`. `migrate` is the `switchyard migrate` command and the readiness gate
//! on it. `live` keeps the sessions of open connections from expiring. `probe` is the
//! `switchyard healthcheck` command's one HTTP GET.

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
pub mod tick;
pub mod ws;

pub use app::{App, DrainReport};
pub use cli::Cli;
pub use config::Config;
