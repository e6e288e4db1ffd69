//! Compiles `proto/rookery/admin/v1/admin.proto` (server and client) and keeps its
//! descriptor set for gRPC reflection. protoc comes from the system.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/rookery/admin/v1/admin.proto";
    println!("cargo:rerun-if-changed={proto}");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // Snapshot chunks are slices of one buffer, not copies.
        .bytes(".rookery.admin.v1.SnapshotChunk.data")
        .file_descriptor_set_path(out.join("admin_descriptor.bin"))
        .compile_protos(&[proto], &["../../proto"])?;
    Ok(())
}
