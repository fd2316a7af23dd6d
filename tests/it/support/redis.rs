//! TestRedis: a real redis-server on a free port, killed when dropped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use switchyard::config::RedisConfig;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::within;

pub(crate) struct TestRedis {
    port: u16,
    /// Some for a Redis that persists to an append-only file, so a restart keeps the data.
    dir: Option<PathBuf>,
    /// More redis-server arguments (replication, cluster mode).
    extra: Vec<String>,
    child: Option<Child>,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("addr")
        .port()
}

/// A Redis URL on which nothing listens.
pub(crate) fn unreachable_url() -> String {
    format!("redis://127.0.0.1:{}", free_port())
}

impl TestRedis {
    /// A Redis with no persistence.
    pub(crate) async fn start() -> Self {
        Self::launch(None).await
    }

    /// A Redis that writes every change to an append-only file, so `stop` then `restart` keeps data.
    pub(crate) async fn start_persistent() -> Self {
        let dir = std::env::temp_dir().join(format!("switchyard-it-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create redis dir");
        Self::launch(Some(dir)).await
    }

    /// A Redis with no persistence and these more arguments, in its own directory (where a
    /// cluster node keeps its nodes.conf).
    pub(crate) async fn start_with(port: u16, extra: Vec<String>) -> Self {
        let dir = std::env::temp_dir().join(format!("switchyard-it-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create redis dir");
        let mut redis = TestRedis {
            port,
            dir: Some(dir),
            extra,
            child: None,
        };
        redis.restart().await;
        redis
    }

    async fn launch(dir: Option<PathBuf>) -> Self {
        let mut redis = TestRedis {
            port: free_port(),
            dir,
            extra: Vec::new(),
            child: None,
        };
        redis.restart().await;
        redis
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// This Redis with a deadline of `timeout` per call.
    pub(crate) fn config(&self, timeout: Duration) -> RedisConfig {
        RedisConfig::new(self.url(), timeout.as_millis() as u64).expect("valid")
    }

    /// Applies every migration (`switchyard migrate`'s work, in process).
    pub(crate) async fn migrate(&self) {
        switchyard::migrate::run(&self.config(Duration::from_secs(5)))
            .await
            .expect("migrations apply");
    }

    /// Starts redis-server (again) on the same port; returns once it accepts connections.
    pub(crate) async fn restart(&mut self) {
        assert!(self.child.is_none(), "redis is already running");
        let mut command = Command::new("redis-server");
        command.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]);
        match &self.dir {
            Some(dir) if !self.extra.is_empty() => command
                .args([
                    "--dir",
                    dir.to_str().expect("utf-8 path"),
                    "--appendonly",
                    "no",
                ])
                .args(&self.extra),
            Some(dir) => command.args([
                "--dir",
                dir.to_str().expect("utf-8 path"),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ]),
            None => command.args(["--appendonly", "no"]),
        };
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        within(
            Duration::from_secs(10),
            "redis-server to accept connections",
            async {
                while let Some(line) = lines.next_line().await.expect("read redis output") {
                    if line.contains("Ready to accept connections") {
                        return;
                    }
                }
                panic!("redis-server exited before it was ready");
            },
        )
        .await;
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    /// Stops redis-server with SIGTERM (a persistent one saves first) and waits for its exit.
    pub(crate) async fn stop(&mut self) {
        self.end(Signal::SIGTERM).await;
    }

    /// Kills redis-server with SIGKILL and waits for its exit: a persistent one keeps what its
    /// append-only file holds (every acknowledged write: `appendfsync always`).
    pub(crate) async fn kill(&mut self) {
        self.end(Signal::SIGKILL).await;
    }

    /// Freezes redis-server (SIGSTOP): connections stay open, nothing is answered.
    pub(crate) fn freeze(&self) {
        self.signal(Signal::SIGSTOP);
    }

    /// Resumes a frozen redis-server (SIGCONT).
    pub(crate) fn thaw(&self) {
        self.signal(Signal::SIGCONT);
    }

    fn signal(&self, signal: Signal) {
        let child = self.child.as_ref().expect("redis is running");
        let pid = child.id().expect("running child has a pid");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)
            .expect("signal redis-server");
    }

    async fn end(&mut self, signal: Signal) {
        self.signal(signal);
        let mut child = self.child.take().expect("redis is running");
        within(
            Duration::from_secs(10),
            "redis-server to exit",
            child.wait(),
        )
        .await
        .expect("wait redis");
    }

    /// A plain connection for inspecting what the server wrote.
    pub(crate) async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("valid url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to test redis")
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // A frozen Redis must not outlive the test as a stopped process.
            if let Some(pid) = child.id() {
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGCONT);
            }
            let _ = child.start_kill();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
