//! `pps`: keeps Plex, Emby and Jellyfin current when media lands on a cloud drive.

fn main() -> std::process::ExitCode {
    pps_cli::cli::main()
}
