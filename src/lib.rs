//! clawgate: a Tailscale-first gateway for the OpenClaw gateway protocol v4.
#![forbid(unsafe_code)]
pub mod discovery;
pub mod net_class;
