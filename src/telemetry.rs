//! Installs the tracing subscriber once: JSON or pretty lines on stdout, filtered by RUST_LOG
//! (default `info`), coloured only when stdout is a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        // Colour codes only for a terminal: a log file or a collector gets plain text.
        .with_ansi(std::io::stdout().is_terminal());
    // `try_init`: a second call (several apps in one test process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
