//! clawgate: a Tailscale-first gateway for the OpenClaw gateway protocol v4.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod protocol;
pub mod state;
