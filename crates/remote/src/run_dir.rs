//! The private directory of one run: control sockets, generated ssh configs, handshake captures.
//! Any ssh process that still mentions it when the run ends is ours and is stopped.

use std::path::PathBuf;

/// The script ssh runs as `KnownHostsCommand`: it records the key under verification and vouches
/// for it only when its fingerprint equals the pin (`-` for no pin). ssh passes the host key
/// itself, so the captured key is exactly the one of the authenticated connection.
const HANDSHAKE_SCRIPT: &str = r#"#!/bin/sh
# written by hostage for one run; arguments: OUT PIN NAME TYPE KEY FINGERPRINT
printf '%s %s %s\n' "$4" "$5" "$6" > "$1"
if [ "$2" != "-" ] && [ "$6" = "$2" ]; then
    printf '%s %s %s\n' "$3" "$4" "$5"
fi
"#;

/// A temp dir (mode 0700) holding everything one run needs on the local side.
#[derive(Debug)]
pub(crate) struct RunDir {
    dir: tempfile::TempDir,
}

impl RunDir {
    /// Creates the directory and the handshake script in `$TMPDIR`.
    pub(crate) fn create() -> std::io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("hostage-fleet.")
            .tempdir()?;
        fs_err::write(dir.path().join("handshake.sh"), HANDSHAKE_SCRIPT)?;
        Ok(Self { dir })
    }

    /// The handshake capture script.
    pub(crate) fn handshake_script(&self) -> PathBuf {
        self.dir.path().join("handshake.sh")
    }

    /// A fresh subdirectory for host number `index`.
    pub(crate) fn host_dir(&self, index: usize) -> std::io::Result<PathBuf> {
        let dir = self.dir.path().join(format!("h{index}"));
        fs_err::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Stops every `ssh` process whose command line mentions this run's directory: masters whose
    /// start was cut short (timeout, Ctrl-C) never got a control socket to be told to exit on.
    pub(crate) fn stop_stray_masters(&self) -> usize {
        let needle = self.dir.path().to_string_lossy().into_owned();
        let pids = ssh_pids_mentioning(&needle);
        for pid in &pids {
            // `kill` rather than a libc call: the workspace forbids unsafe code.
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        pids.len()
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        self.stop_stray_masters();
    }
}

fn ssh_pids_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = fs_err::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id();
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            if pid == own {
                return None;
            }
            let raw = fs_err::read(entry.path().join("cmdline")).ok()?;
            let mut args = raw.split(|b| *b == 0);
            let program = String::from_utf8_lossy(args.next()?).into_owned();
            let is_ssh = program == "ssh" || program.ends_with("/ssh");
            let mentions = raw
                .split(|b| *b == 0)
                .any(|arg| String::from_utf8_lossy(arg).contains(needle));
            (is_ssh && mentions).then_some(pid)
        })
        .collect()
}
