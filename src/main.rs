//! The `clawgate` binary.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(clawgate::cli::main());
}
