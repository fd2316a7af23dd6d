//! Where the checker reads every session's count at the end: a Redis URL (or HOST:PORT, or a
//! port on 127.0.0.1), a Redis Cluster (`cluster:HOST:PORT,...`), or `redis-cli` inside a
//! container (`exec:CONTAINER`, for a network the host has no route into).

use anyhow::{Context, bail};
use redis::AsyncCommands;
use switchyard::store::session_key;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Counts {
    Url(String),
    Cluster(Vec<String>),
    Exec(String),
}

impl std::str::FromStr for Counts {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(container) = s.strip_prefix("exec:") {
            return non_empty(container).map(|c| Counts::Exec(c.to_owned()));
        }
        if let Some(nodes) = s.strip_prefix("cluster:") {
            let nodes: Vec<String> = nodes
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| format!("redis://{n}"))
                .collect();
            if nodes.is_empty() {
                return Err(format!("{s:?}: cluster: needs HOST:PORT[,HOST:PORT...]"));
            }
            return Ok(Counts::Cluster(nodes));
        }
        if s.starts_with("redis://") {
            return Ok(Counts::Url(s.to_owned()));
        }
        if s.parse::<u16>().is_ok() {
            return Ok(Counts::Url(format!("redis://127.0.0.1:{s}")));
        }
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Counts::Url(format!("redis://{s}")))
            }
            _ => Err(format!(
                "{s:?} is none of redis://URL, HOST:PORT, PORT, cluster:HOST:PORT,... or exec:CONTAINER"
            )),
        }
    }
}

fn non_empty(s: &str) -> Result<&str, String> {
    if s.is_empty() {
        Err("exec: needs a container name or id".into())
    } else {
        Ok(s)
    }
}

impl Counts {
    /// The `count` field of each session (0 where the session does not exist), in order.
    pub(crate) async fn fetch(&self, ids: &[Uuid]) -> anyhow::Result<Vec<u64>> {
        let keys: Vec<String> = ids.iter().map(|id| session_key(*id)).collect();
        let counts: Vec<Option<u64>> = match self {
            Counts::Url(url) => {
                let client = redis::Client::open(url.as_str())?;
                let mut conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .with_context(|| format!("connecting to {url}"))?;
                let mut pipe = redis::pipe();
                keys.iter().for_each(|key| {
                    pipe.hget(key, "count");
                });
                pipe.query_async(&mut conn).await?
            }
            Counts::Cluster(nodes) => {
                let client = redis::cluster::ClusterClient::new(nodes.clone())?;
                let mut conn = client
                    .get_async_connection()
                    .await
                    .with_context(|| format!("connecting to the cluster {nodes:?}"))?;
                let mut counts = Vec::with_capacity(keys.len());
                for key in &keys {
                    counts.push(conn.hget(key, "count").await?);
                }
                counts
            }
            Counts::Exec(container) => exec_counts(container, &keys).await?,
        };
        Ok(counts.into_iter().map(Option::unwrap_or_default).collect())
    }
}

/// `HGET key count` for each key through `docker exec -i CONTAINER redis-cli --raw`.
async fn exec_counts(container: &str, keys: &[String]) -> anyhow::Result<Vec<Option<u64>>> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("docker")
        .args(["exec", "-i", container, "redis-cli", "--raw"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running docker exec")?;
    let commands: String = keys.iter().map(|k| format!("HGET {k} count\n")).collect();
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(commands.as_bytes()).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "docker exec {container} redis-cli exited with {}",
            out.status
        );
    }
    let lines: Vec<Option<u64>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| line.trim().parse().ok())
        .collect();
    if lines.len() != keys.len() {
        bail!(
            "redis-cli in {container} answered {} lines for {} keys",
            lines.len(),
            keys.len()
        );
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_a_bad_one_is_named() {
        let parse = |s: &str| s.parse::<Counts>();
        assert_eq!(
            parse("6379"),
            Ok(Counts::Url("redis://127.0.0.1:6379".into()))
        );
        assert_eq!(
            parse("10.0.0.2:6380"),
            Ok(Counts::Url("redis://10.0.0.2:6380".into()))
        );
        assert_eq!(
            parse("redis://h:1/0"),
            Ok(Counts::Url("redis://h:1/0".into()))
        );
        assert_eq!(
            parse("cluster:127.0.0.1:7000,127.0.0.1:7001"),
            Ok(Counts::Cluster(vec![
                "redis://127.0.0.1:7000".into(),
                "redis://127.0.0.1:7001".into()
            ]))
        );
        assert_eq!(parse("exec:abc"), Ok(Counts::Exec("abc".into())));
        for bad in ["", "exec:", "cluster:", "host", "host:port"] {
            let error = parse(bad).unwrap_err();
            assert!(
                error.contains("needs") || error.contains(bad),
                "{bad}: {error}"
            );
        }
    }
}
