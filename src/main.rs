use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = partnergate::cli::Cli::parse();
    partnergate::app::main(cli)
}
