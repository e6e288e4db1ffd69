//! Compiles the peer protocol (`proto/rookery/quorum/v1/quorum.proto`) with prost.
//! protoc comes from the system (Debian's protobuf-compiler, installed by `.ci/run`).

fn main() -> std::io::Result<()> {
    let proto = "../../proto/rookery/quorum/v1/quorum.proto";
    println!("cargo:rerun-if-changed={proto}");
    prost_build::Config::new().compile_protos(&[proto], &["../../proto"])
}
