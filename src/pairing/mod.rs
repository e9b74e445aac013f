//! Device pairing, device and bootstrap tokens, node capability approval: the
//! pure [`machine`] over [`types`], and the durable [`store`].

pub mod machine;
pub mod setup_code;
pub mod store;
pub mod types;

pub use machine::{Caller, DeviceConnect, Entropy, PairingError, Reason, TokenCheck};
pub use types::*;
