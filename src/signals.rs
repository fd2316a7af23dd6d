//! SIGTERM and SIGINT, exposed as one future: "shutdown was requested".

use std::future::Future;

use futures_util::StreamExt;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_tokio::Signals;

/// Installs the handlers now (so a signal that arrives from here on is never fatal) and returns
/// a future that resolves on the first SIGTERM or SIGINT.
pub fn shutdown_requested() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    Ok(async move {
        if let Some(signal) = signals.next().await {
            let name = if signal == SIGTERM {
                "SIGTERM"
            } else {
                "SIGINT"
            };
            tracing::info!(signal = name, "shutdown requested");
        }
    })
}
