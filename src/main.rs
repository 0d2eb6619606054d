use std::process::ExitCode;

use clap::Parser;

// A proxy allocates per request (headers, log lines); glibc malloc fragments under
// that load, mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = partnergate::cli::Cli::parse();
    partnergate::app::main(cli)
}
