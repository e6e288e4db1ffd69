//! `cargo xtask jepsen`: issue 6's Jepsen-style test. Builds the release `rookery` and
//! `rookery-jepsen`, then runs the register workload under the combined nemesis with
//! the harness pointed at the release binary (`ROOKERY_BIN`); the report goes under
//! <target>/jepsen/. The exit status is rookery-jepsen's: non-zero on any anomaly.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Args)]
pub(crate) struct JepsenArgs {
    /// Passed on to rookery-jepsen: --target rookery|zookeeper --time SECS --seed N
    /// --nodes N --concurrency N (`cargo xtask jepsen -- --help` lists them).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

pub(crate) fn run(root: &Path, args: &JepsenArgs) -> Result<()> {
    crate::run(
        "build the release binaries",
        crate::cargo().args([
            "build",
            "--release",
            "-p",
            "rookery",
            "-p",
            "rookery-jepsen",
        ]),
    )?;
    let target = crate::target_dir(root);
    let release = target.join("release");
    let status = Command::new(release.join("rookery-jepsen"))
        .args(&args.args)
        .arg("--out")
        .arg(target.join("jepsen"))
        .env("ROOKERY_BIN", release.join("rookery"))
        .current_dir(root)
        .status()
        .context("starting rookery-jepsen")?;
    if !status.success() {
        bail!("jepsen: {status} (see the report directory printed above)");
    }
    Ok(())
}
