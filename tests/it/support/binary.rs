//! TestBinary: the real `switchyard` executable with environment variables; its address read
//! from its start-up log; signalled by PID.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::within;

pub(crate) struct TestBinary {
    pub(crate) addr: SocketAddr,
    child: Child,
    /// Every stdout line after the start-up line.
    pub(crate) log: mpsc::UnboundedReceiver<String>,
}

impl TestBinary {
    /// Starts `switchyard serve` with PORT=0 on 127.0.0.1 and these variables.
    pub(crate) async fn start(env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("serve")
            .env("BIND", "127.0.0.1")
            .env("PORT", "0")
            .env("LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start switchyard");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let addr = within(Duration::from_secs(10), "the 'listening' log line", async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if event["message"] == "listening" {
                    return event["addr"]
                        .as_str()
                        .expect("addr field")
                        .parse()
                        .expect("socket address");
                }
            }
            panic!("switchyard exited before listening");
        })
        .await;
        let (tx, log) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
        TestBinary { addr, child, log }
    }

    pub(crate) fn sigterm(&self) {
        let pid = self.child.id().expect("running") as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM");
    }

    /// SIGKILL, and waits for the process to be gone.
    pub(crate) async fn kill9(&mut self) {
        self.child.start_kill().expect("SIGKILL");
        self.exit_status(Duration::from_secs(5)).await;
    }

    pub(crate) async fn exit_status(&mut self, limit: Duration) -> ExitStatus {
        within(limit, "switchyard to exit", self.child.wait())
            .await
            .expect("wait")
    }
}

/// Runs `switchyard ARGS` with these variables; returns its exit status and its output
/// (stdout then stderr).
pub(crate) async fn run_command(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let output = within(
        Duration::from_secs(20),
        "switchyard to finish",
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(args)
            .envs(env.iter().copied())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("run switchyard");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status, text)
}
