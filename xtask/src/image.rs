//! `cargo xtask image`: the Rookery container image, built without any registry.
//!
//! Builds the release binary, assembles a root filesystem under
//! `<target>/image/context/` (the binary; the shared libraries `ldd` lists for it, at
//! the paths it lists; a static busybox for `/bin/sh` and the entrypoint's few
//! commands; `/etc/passwd` and `/etc/group` with the user `rookery`, uid 1000;
//! deploy/docker/docker-entrypoint.sh) and runs `docker build` with
//! deploy/docker/Dockerfile, which starts `FROM scratch`, so nothing is pulled.
//!
//! Needs, at build time only: docker, `ldd`, and a static busybox (Debian:
//! `apt-get install busybox-static`).

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

/// The rookery user and group inside the image (the official zookeeper image uses
/// uid 1000 too).
const UID: u32 = 1000;
/// Where a static busybox is looked for, first to last.
const BUSYBOX: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];

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
    let busybox = static_busybox()?;
    crate::run(
        "build",
        crate::cargo().args(["build", "--release", "--locked", "-p", "rookery"]),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("release").join("rookery");
    let context = target.join("image").join("context");
    assemble(root, &bin, &busybox, &context)?;
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
        "built {tag}; try: docker run --rm {tag}   or: docker compose -f deploy/docker/compose.yaml up -d",
        tag = args.tag
    );
    Ok(())
}

/// The busybox to copy, which must not need any shared library.
fn static_busybox() -> Result<PathBuf> {
    let Some(found) = BUSYBOX.iter().map(PathBuf::from).find(|p| p.is_file()) else {
        bail!("no busybox at {BUSYBOX:?}: install a static one (apt-get install busybox-static)");
    };
    // ldd exits non-zero with "not a dynamic executable" for a static binary.
    let out = Command::new("ldd")
        .arg(&found)
        .output()
        .context("running ldd")?;
    if out.status.success() {
        bail!(
            "{} is dynamically linked; install Debian's busybox-static instead of busybox",
            found.display()
        );
    }
    Ok(found)
}

/// Writes the build context: `rootfs/` (owned by root in the image), `owned/` (owned by
/// the rookery user) and the Dockerfile.
fn assemble(root: &Path, bin: &Path, busybox: &Path, context: &Path) -> Result<()> {
    if context.exists() {
        std::fs::remove_dir_all(context)
            .with_context(|| format!("removing {}", context.display()))?;
    }
    let rootfs = context.join("rootfs");
    let owned = context.join("owned");

    // The server, stripped when strip is there (line tables are for backtraces in
    // development; the image is 10 times smaller without them).
    let dest = rootfs.join("usr/local/bin/rookery");
    copy(bin, &dest, 0o755)?;
    let stripped = Command::new("strip")
        .arg(&dest)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        println!("strip is not available; the binary keeps its debug line tables");
    }

    // Its shared libraries, at the paths the dynamic loader looks them up under.
    for lib in shared_libraries(bin)? {
        let inside = lib.strip_prefix("/").unwrap_or(&lib);
        copy(&lib, &rootfs.join(inside), 0o755)?;
    }

    // busybox as /bin/sh and every applet it has, for the entrypoint and for
    // `docker exec ... sh` when something needs looking into.
    copy(busybox, &rootfs.join("bin/busybox"), 0o755)?;
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .context("busybox --list")?;
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet == "busybox" || applet.contains('/') {
            continue;
        }
        symlink("busybox", rootfs.join("bin").join(applet))
            .with_context(|| format!("linking /bin/{applet}"))?;
    }

    write(
        &rootfs.join("etc/passwd"),
        &format!(
            "root:x:0:0:root:/root:/bin/sh\nrookery:x:{UID}:{UID}:Rookery:/data:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        ),
        0o644,
    )?;
    write(
        &rootfs.join("etc/group"),
        &format!("root:x:0:\nrookery:x:{UID}:\nnogroup:x:65534:\n"),
        0o644,
    )?;
    // glibc's defaults without this file put DNS before /etc/hosts.
    write(
        &rootfs.join("etc/nsswitch.conf"),
        "passwd: files\ngroup: files\nhosts: files dns\n",
        0o644,
    )?;
    dir(&rootfs.join("root"), 0o700)?;
    dir(&rootfs.join("tmp"), 0o1777)?;
    let docker = root.join("deploy/docker");
    copy(
        &docker.join("docker-entrypoint.sh"),
        &rootfs.join("docker-entrypoint.sh"),
        0o755,
    )?;

    for d in ["conf", "data", "datalog"] {
        dir(&owned.join(d), 0o755)?;
    }
    copy(
        &docker.join("Dockerfile"),
        &context.join("Dockerfile"),
        0o644,
    )?;
    Ok(())
}

/// The files `ldd` names for `bin`: `libc.so.6 => /lib/.../libc.so.6 (0x...)` and the
/// loader `/lib64/ld-linux-x86-64.so.2 (0x...)`; the vDSO has no file.
fn shared_libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .context("running ldd")?;
    if !out.status.success() {
        bail!(
            "ldd {} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        match path {
            Some(p) if p.starts_with('/') => libs.push(PathBuf::from(p)),
            Some("not") => bail!("ldd: {line}"),
            _ => {}
        }
    }
    if libs.is_empty() {
        bail!("ldd listed no libraries for {}:\n{text}", bin.display());
    }
    Ok(libs)
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
