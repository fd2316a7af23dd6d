//! The `switchyard` binary: parse the command line, start telemetry, run the command, and turn
//! an error into a message and a non-zero exit.

use std::process::ExitCode;

use clap::Parser;
use switchyard::cli::{Cli, Command, HealthcheckArgs, MigrateArgs, ServeArgs};
use switchyard::config::{ConfigError, RedisConfig};
use switchyard::{App, Config, signals, telemetry};

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve(args),
        Command::Migrate(args) => migrate(args),
        Command::Healthcheck(args) => healthcheck(args),
    }
}

fn healthcheck(args: HealthcheckArgs) -> ExitCode {
    let probe = switchyard::probe::Probe {
        addr: (std::net::Ipv4Addr::LOCALHOST, args.port).into(),
        path: args.path,
        timeout: std::time::Duration::from_millis(args.timeout_ms),
    };
    match probe.get() {
        Ok(answer) => {
            if args.print {
                print!("{}", answer.body);
            }
            if answer.is_success() {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "switchyard healthcheck: {} answered {}: {}",
                    probe.path,
                    answer.status,
                    answer.body.trim()
                );
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!(
                "switchyard healthcheck: GET http://{}{}: {error}",
                probe.addr, probe.path
            );
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| {
            eprintln!("switchyard: cannot start the runtime: {error}");
            ExitCode::FAILURE
        })
}

/// A value that cannot be used stops the command with exit code 2 and names the variable.
fn invalid_configuration(error: &ConfigError) -> ExitCode {
    eprintln!("switchyard: {error}");
    ExitCode::from(2)
}

fn migrate(args: MigrateArgs) -> ExitCode {
    let redis = match RedisConfig::try_from(args.redis) {
        Ok(redis) => redis,
        Err(error) => return invalid_configuration(&error),
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(switchyard::migrate::run(&redis)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("switchyard migrate: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let check_only = args.check_config;
    let config = match Config::try_from(args) {
        Ok(config) => config,
        Err(error) => return invalid_configuration(&error),
    };
    if check_only {
        println!(
            "switchyard: the configuration is valid: {}",
            config.summary()
        );
        return ExitCode::SUCCESS;
    }
    telemetry::init(config.log_format);
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let result = runtime.block_on(async {
        let shutdown = signals::shutdown_requested()?;
        App::build(config).await?.run_until_stopped(shutdown).await
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("switchyard: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// jemalloc fragments less than glibc's malloc under many small per-connection allocations:
/// 3.4 instead of 4.4 KiB of RSS per idle connection at 15 000 connections (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
