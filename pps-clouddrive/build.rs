//! Compiles `proto/clouddrive.proto` in pure Rust (protox parses it, tonic-prost-build
//! writes the code), so a fresh machine builds the crate with cargo alone, no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/clouddrive.proto");
    let fds = protox::compile(["proto/clouddrive.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        // The server half is plain generated code; it is used only by the `mock`
        // feature, but compiling it always keeps build.rs free of feature logic.
        .build_server(true)
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
