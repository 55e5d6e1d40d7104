//! The `pps` binary, built from the same code as pps-cli's `pps` (one `main`), so this
//! crate's tests run the real command as a process (`CARGO_BIN_EXE_pps-e2e`). A
//! different name keeps the two outputs from colliding in the target folder.

fn main() -> std::process::ExitCode {
    pps_cli::cli::main()
}
