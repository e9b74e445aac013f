//! clawgate: a Tailscale-first gateway for the OpenClaw gateway protocol v4.
#![forbid(unsafe_code)]

pub mod protocol;
pub mod config;
pub mod state;
