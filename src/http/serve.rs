//! The accept loop: every TCP connection is served by hyper's HTTP/1.1 (with upgrades) under a
//! header-read timeout, so a client that never finishes its request is closed; on shutdown
//! the loop stops accepting, asks every connection to finish, and cuts what is left at the
//! deadline, so no connection can hold the process past it.

use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long the loop waits after a failed accept (e.g. out of file descriptors) before retrying.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The running accept loop.
#[derive(Debug)]
pub struct HttpServer {
    /// Carries the deadline by which every connection must be gone.
    stop: oneshot::Sender<Instant>,
    task: JoinHandle<usize>,
}

impl HttpServer {
    /// Serves `router` on `listener` until [`HttpServer::shutdown`].
    pub fn spawn(listener: TcpListener, router: Router, header_timeout: Duration) -> Self {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, router, http, stopped));
        HttpServer { stop, task }
    }

    /// Stops accepting, lets each connection finish, and cuts the ones still open at
    /// `deadline`; returns how many were cut.
    pub async fn shutdown(self, deadline: Instant) -> Result<usize, tokio::task::JoinError> {
        // An error means the loop has already ended, which `task` reports.
        let _ = self.stop.send(deadline);
        self.task.await
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    http: http1::Builder,
    mut stopped: oneshot::Receiver<Instant>,
) -> usize {
    let finish = CancellationToken::new();
    let mut connections = JoinSet::new();
    let deadline = loop {
        // Reap finished connections so the set holds only live ones.
        while connections.try_join_next().is_some() {}
        tokio::select! {
            deadline = &mut stopped => break deadline.unwrap_or_else(|_| Instant::now()),
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    connections.spawn(serve_connection(tcp, router.clone(), http.clone(), finish.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    };
    drop(listener);
    finish.cancel();
    let all_done = async { while connections.join_next().await.is_some() {} };
    match tokio::time::timeout_at(deadline, all_done).await {
        Ok(()) => 0,
        Err(_) => {
            let cut = connections.len();
            tracing::warn!(cut, "drain timeout: cutting the remaining HTTP connections");
            connections.abort_all();
            cut
        }
    }
}

/// One connection until it ends; once `finish` fires, it finishes the request in progress
/// and closes. An upgraded connection leaves hyper and is no longer counted here.
async fn serve_connection(
    tcp: TcpStream,
    router: Router,
    http: http1::Builder,
    finish: CancellationToken,
) {
    // Replies are small frames written whole: send them at once.
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
    let service = TowerToHyperService::new(router);
    let connection = http
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = finish.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}
