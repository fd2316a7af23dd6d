//! TestApp: the real App in-process on a free port, against a TestRedis, with short
//! intervals. Dropping it triggers its shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use switchyard::cli::Command;
use switchyard::{App, Cli, Config, DrainReport};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{TestRedis, within};

pub(crate) struct TestApp {
    pub(crate) addr: SocketAddr,
    pub(crate) redis: Option<TestRedis>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<DrainReport>>>,
}

/// Flags every test app gets unless it overrides them.
const DEFAULTS: [(&str, &str); 6] = [
    ("--bind", "127.0.0.1"),
    ("--port", "0"),
    ("--heartbeat-interval-secs", "1"),
    ("--drain-spread-ms", "200"),
    ("--drain-timeout-secs", "5"),
    ("--redis-timeout-ms", "300"),
];

impl TestApp {
    /// An app on a fresh Redis.
    pub(crate) async fn spawn(extra: &[(&str, &str)]) -> Self {
        Self::spawn_with_redis(TestRedis::start().await, extra).await
    }

    /// An app on the given Redis, migrated, which it keeps.
    pub(crate) async fn spawn_with_redis(redis: TestRedis, extra: &[(&str, &str)]) -> Self {
        redis.migrate().await;
        Self::spawn_unmigrated(redis, extra).await
    }

    /// An app on the given Redis as it is, without running migrations.
    pub(crate) async fn spawn_unmigrated(redis: TestRedis, extra: &[(&str, &str)]) -> Self {
        let url = redis.url();
        let mut app = Self::spawn_with(&[&[("--redis-url", url.as_str())], extra].concat()).await;
        app.redis = Some(redis);
        app
    }

    /// An app with these flags and no Redis of its own (e.g. `--store memory`).
    pub(crate) async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            switchyard::telemetry::init(switchyard::config::LogFormat::Pretty);
        }
        let mut argv = vec!["switchyard", "serve"];
        for (flag, value) in DEFAULTS
            .iter()
            .filter(|(f, _)| !extra.iter().any(|(e, _)| e == f))
            .chain(extra)
        {
            argv.extend([*flag, *value]);
        }
        let Command::Serve(args) = Cli::try_parse_from(argv).expect("valid flags").command else {
            unreachable!("parsed `serve`")
        };
        let config = Config::try_from(args).expect("valid config");
        let app = App::build(config).await.expect("app builds");
        let addr = app.local_addr();
        let (shutdown, stopped) = oneshot::channel();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        TestApp {
            addr,
            redis: None,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    pub(crate) fn redis(&mut self) -> &mut TestRedis {
        self.redis.as_mut().expect("this app has a TestRedis")
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .expect("HTTP request")
    }

    /// Triggers the drain without waiting for it.
    pub(crate) fn begin_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Triggers shutdown and waits for the app to stop.
    pub(crate) async fn shutdown(mut self) -> DrainReport {
        self.begin_shutdown();
        let task = self.task.take().expect("running");
        within(Duration::from_secs(10), "the app to stop", task)
            .await
            .expect("app task")
            .expect("app result")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}
