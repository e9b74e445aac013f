//! clawgate: a Tailscale-first gateway for the OpenClaw gateway protocol v4.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod discovery;
pub mod exposure;
pub mod identity;
pub mod net_class;
pub mod pairing;
pub mod protocol;
pub mod server;
pub mod state;
pub mod tailscale;
pub mod tls;
pub mod util;
