//! `cargo xtask image`: the Rookery container image, built without any registry.
//!
//! Builds `rookery` for the host's `*-linux-gnu` target with glibc linked statically
//! (`-C target-feature=+crt-static`, given through RUSTFLAGS with `--target`, so build
//! scripts and proc-macros stay ordinary host programs), checks that the result has no
//! program interpreter, assembles a root filesystem under `<target>/image/context/` and
//! runs `docker build` with deploy/docker/Dockerfile, which starts `FROM scratch`: no
//! base image, nothing pulled. The image holds the stripped binary, `/etc/passwd` and
//! `/etc/group` (user `rookery`, uid 1000), `/etc/nsswitch.conf` (`hosts: files dns`,
//! which the static glibc's resolver reads), a standalone `/conf/zoo.cfg` and `/data`
//! owned by the rookery user; no shell.
//!
//! Needs, at build time only: docker, and glibc's static libraries (Debian's
//! libc6-dev, which gcc brings).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

/// The rookery user and group inside the image (the official zookeeper image uses
/// uid 1000 too).
const UID: u32 = 1000;
const STATIC: &str = "-C target-feature=+crt-static";

#[derive(Args)]
pub(crate) struct ImageArgs {
    /// Image tag.
    #[arg(long, default_value = "rookery:dev")]
    tag: String,
    /// Assemble the build context but do not run `docker build`.
    #[arg(long)]
    no_build: bool,
}

pub(crate) fn run(root: &Path, args: &ImageArgs) -> Result<()> {
    let triple = host_triple()?;
    if !triple.ends_with("-linux-gnu") {
        bail!("the image needs a *-linux-gnu host to link glibc statically; this is {triple}");
    }
    // Appended to the caller's flags; with --target they reach only the target's
    // crates, so build scripts and proc-macros still link dynamically and run.
    let rustflags = match std::env::var("RUSTFLAGS") {
        Ok(f) if !f.trim().is_empty() => format!("{f} {STATIC}"),
        _ => STATIC.to_string(),
    };
    crate::run(
        "build (static)",
        crate::cargo()
            .args([
                "build",
                "--release",
                "--locked",
                "-p",
                "rookery",
                "--target",
            ])
            .arg(&triple)
            .env("RUSTFLAGS", rustflags),
    )?;
    let target = crate::target_dir(root);
    let bin = target.join(&triple).join("release").join("rookery");
    let elf = std::fs::read(&bin).with_context(|| format!("reading {}", bin.display()))?;
    match needs_interpreter(&elf) {
        Some(false) => {}
        Some(true) => bail!(
            "{} still needs a dynamic loader; is glibc's libc.a installed (libc6-dev)?",
            bin.display()
        ),
        None => bail!("{} is not a 64-bit ELF file", bin.display()),
    }
    let context = target.join("image").join("context");
    assemble(root, &bin, &context)?;
    println!("build context: {}", context.display());
    if args.no_build {
        return Ok(());
    }
    crate::run(
        "docker build",
        Command::new("docker")
            .args(["build", "--tag", &args.tag, "--file"])
            .arg(context.join("Dockerfile"))
            .arg(&context),
    )?;
    println!(
        "built {tag}; try: docker run --rm {tag}   or: docker-compose -f deploy/docker/compose.yaml up -d",
        tag = args.tag
    );
    Ok(())
}

/// The `host:` line of `rustc -vV`, e.g. x86_64-unknown-linux-gnu.
fn host_triple() -> Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_string())
        .context("rustc -vV printed no host line")
}

/// Whether a 64-bit little-endian ELF file has a PT_INTERP program header (needs the
/// dynamic loader); `None` if it is not such a file. `ldd` would also do, but its
/// wording for static and static-pie binaries differs between versions.
fn needs_interpreter(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if elf.get(..4)? != b"\x7fELF" || *elf.get(4)? != 2 || *elf.get(5)? != 1 {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let phoff = usize::try_from(u64::from_le_bytes(elf.get(0x20..0x28)?.try_into().ok()?)).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let kind = u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?);
        if kind == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

/// Writes the build context: `rootfs/` (owned by root in the image), `owned/` (owned by
/// the rookery user) and the Dockerfile.
fn assemble(root: &Path, bin: &Path, context: &Path) -> Result<()> {
    if context.exists() {
        std::fs::remove_dir_all(context)
            .with_context(|| format!("removing {}", context.display()))?;
    }
    let rootfs = context.join("rootfs");
    let owned = context.join("owned");
    let docker = root.join("deploy/docker");

    // The server, stripped when strip is there (line tables are for backtraces in
    // development; the image is several times smaller without them).
    let dest = rootfs.join("usr/local/bin/rookery");
    copy(bin, &dest, 0o755)?;
    let stripped = Command::new("strip")
        .arg(&dest)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        println!("strip is not available; the binary keeps its debug line tables");
    }

    write(
        &rootfs.join("etc/passwd"),
        &format!(
            "root:x:0:0:root:/root:/sbin/nologin\nrookery:x:{UID}:{UID}:Rookery:/data:/sbin/nologin\n\
             nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
        ),
        0o644,
    )?;
    write(
        &rootfs.join("etc/group"),
        &format!("root:x:0:\nrookery:x:{UID}:\nnogroup:x:65534:\n"),
        0o644,
    )?;
    // Read by the static glibc's getaddrinfo too: /etc/hosts first (Docker writes the
    // container's own name there, Kubernetes its pod's FQDN), then DNS (Docker's
    // embedded server for the other containers' names, the cluster DNS for pods').
    write(
        &rootfs.join("etc/nsswitch.conf"),
        "passwd: files\ngroup: files\nhosts: files dns\n",
        0o644,
    )?;
    // Without a mounted /conf/zoo.cfg, `docker run rookery:dev` is a standalone server.
    copy(
        &docker.join("standalone.cfg"),
        &rootfs.join("conf/zoo.cfg"),
        0o644,
    )?;
    dir(&rootfs.join("tmp"), 0o1777)?;
    dir(&owned.join("data"), 0o750)?;
    copy(
        &docker.join("Dockerfile"),
        &context.join("Dockerfile"),
        0o644,
    )?;
    Ok(())
}

fn dir(path: &Path, mode: u32) -> Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Copies the file `from` (following symlinks) to `to`, creating parents.
fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    if let Some(parent) = to.parent() {
        dir(parent, 0o755)?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", to.display()))
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        dir(parent, 0o755)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::needs_interpreter;

    /// A minimal ELF64 header with one program header of type `kind` at offset 64.
    fn elf(kind: u32) -> Vec<u8> {
        let mut f = vec![0u8; 64 + 56];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2; // 64-bit
        f[5] = 1; // little-endian
        f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        f[64..68].copy_from_slice(&kind.to_le_bytes());
        f
    }

    #[test]
    fn finds_the_program_interpreter() {
        assert_eq!(needs_interpreter(&elf(3)), Some(true));
        assert_eq!(needs_interpreter(&elf(1)), Some(false));
        assert_eq!(needs_interpreter(b"#!/bin/sh\n"), None);
        // A header pointing past the end is not read out of bounds.
        let mut short = elf(3);
        short.truncate(66);
        assert_eq!(needs_interpreter(&short), None);
    }

    #[test]
    fn this_machines_binaries_are_told_apart() {
        // /bin/sh is dynamically linked on every Debian.
        if let Ok(sh) = std::fs::read("/bin/sh") {
            assert_eq!(needs_interpreter(&sh), Some(true));
        }
    }
}
