//! One integration-test binary: the real server (in-process or the real binary) on a free
//! port, against a real redis-server on a free port, spoken to over real WebSockets.

mod close_codes;
mod drain;
mod echo;
mod faults;
mod golden;
mod heartbeat;
mod layering;
mod messages;
mod migrations;
mod ops;
mod protocol_errors;
mod redis_outage;
mod sessions;
mod slow_requests;
mod store_contract;
mod support;
mod topologies;
