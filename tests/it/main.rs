//! One integration-test binary: the real server (in-process or the real binary) on a free
//! port, against a real redis-server on a free port, spoken to over real WebSockets.

mod close_codes;
mod drain;
mod faults;
mod heartbeat;
mod messages;
mod migrations;
mod ops;
mod redis_outage;
mod sessions;
mod store_contract;
mod support;
