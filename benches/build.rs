//! Compiles `proto/helloworld.proto` for the `sidecar-tax` benchmark with the vendored `protoc`,
//! so the build needs nothing installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    config.bytes(["."]);
    tonic_prost_build::configure()
        .build_transport(false)
        .compile_with_config(config, &["proto/helloworld.proto"], &["proto"])?;
    Ok(())
}
