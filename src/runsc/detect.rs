//! Detects the runsc release and the features it offers, once per binary:
//! the result is cached beside the state database, keyed by the binary's
//! path, size and mtime, because `runsc --version` alone costs ~25 ms and
//! pod start-up has to stay within a few ms of bare runsc.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::{Result, RunscError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// What `runsc --version` printed on its first line.
    pub raw: String,
    /// Release date as yyyymmdd (e.g. 20221219), 0 when unknown (a dev build).
    pub release: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    /// Platforms this runsc offers (`runsc help platforms`).
    pub platforms: Vec<String>,
    /// The platform runsc uses when none is given.
    pub default_platform: String,
    /// Top-level flags runsc accepts (`runsc flags`).
    pub flags: BTreeSet<String>,
    /// Release 20221219 and older: `runsc restore` creates the container itself
    /// and fails after a prior `runsc create` (DESIGN.md fact 5).
    pub restore_creates: bool,
    /// Releases before 20240807 decide "root netns" from
    /// /proc/sys/net/core/rmem_default, which kernels >= 6.11 show in every
    /// netns (gVisor issue #10704, DESIGN.md fact 3).
    pub root_netns_false_positive: bool,
    /// 20240415 and newer keep the sandbox running in place on `--leave-running`.
    pub leave_running_in_place: bool,
}

impl Features {
    pub fn has_flag(&self, name: &str) -> bool {
        self.flags.contains(name)
    }
}

#[derive(Serialize, Deserialize)]
struct Cache {
    bin: PathBuf,
    size: u64,
    mtime_ns: i128,
    version: Version,
    features: Features,
}

pub fn detect(bin: &Path, cache_dir: &Path) -> Result<(Version, Features)> {
    let meta = std::fs::metadata(bin).map_err(|source| RunscError::Spawn {
        bin: bin.to_owned(),
        source,
    })?;
    let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
    let cache_path = cache_dir.join("runsc-features.json");
    if let Ok(text) = std::fs::read(&cache_path) {
        if let Ok(c) = serde_json::from_slice::<Cache>(&text) {
            if c.bin == bin && c.size == meta.len() && c.mtime_ns == mtime_ns {
                return Ok((c.version, c.features));
            }
        }
    }
    let version = parse_version(&output(bin, &["--version"])?);
    let platforms = parse_platforms(&output(bin, &["help", "platforms"])?);
    let flags = parse_flags(&output(bin, &["flags"])?);
    let features = derive_features(&version, platforms, flags);
    let cache = Cache {
        bin: bin.to_owned(),
        size: meta.len(),
        mtime_ns,
        version: version.clone(),
        features: features.clone(),
    };
    // A cache that cannot be written only costs time on the next call.
    if let Ok(text) = serde_json::to_vec_pretty(&cache) {
        let _ = crate::util::write_atomic(&cache_path, &text);
    }
    Ok((version, features))
}

fn output(bin: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| RunscError::Spawn {
            bin: bin.to_owned(),
            source,
        })?;
    // `runsc flags` and `runsc help` print to stderr on some releases.
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(s)
}

/// Parses "runsc version 0.0~20221219.0" or "runsc version release-20240807.0".
pub fn parse_version(text: &str) -> Version {
    let raw = text.lines().next().unwrap_or("").trim().to_string();
    let release = raw
        .split(|c: char| !c.is_ascii_digit())
        .find(|tok| tok.len() == 8 && tok.starts_with("20"))
        .and_then(|tok| tok.parse().ok())
        .unwrap_or(0);
    Version { raw, release }
}

fn parse_platforms(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        .map(str::to_string)
        .collect()
}

fn parse_flags(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix('-'))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn derive_features(v: &Version, mut platforms: Vec<String>, flags: BTreeSet<String>) -> Features {
    // A dev build (release 0) is treated as current.
    let at_least = |d: u32| v.release == 0 || v.release >= d;
    if platforms.is_empty() {
        platforms.push("ptrace".into());
    }
    let default_platform = if platforms.iter().any(|p| p == "systrap") && at_least(20230621) {
        "systrap".to_string()
    } else {
        "ptrace".to_string()
    };
    Features {
        platforms,
        default_platform,
        flags,
        restore_creates: !at_least(20230327),
        root_netns_false_positive: !at_least(20240807),
        leave_running_in_place: at_least(20240415),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_debian_and_upstream_builds() {
        assert_eq!(
            parse_version("runsc version 0.0~20221219.0\nspec: 1.0.2-dev\n").release,
            20221219
        );
        assert_eq!(
            parse_version("runsc version release-20240807.0\n").release,
            20240807
        );
        assert_eq!(parse_version("runsc version VERSION_MISSING\n").release, 0);
    }

    #[test]
    fn features_follow_the_release() {
        let old = derive_features(
            &parse_version("runsc version 0.0~20221219.0"),
            vec!["kvm".into(), "ptrace".into()],
            BTreeSet::new(),
        );
        assert!(
            old.restore_creates && old.root_netns_false_positive && !old.leave_running_in_place
        );
        assert_eq!(old.default_platform, "ptrace");
        let new = derive_features(
            &parse_version("runsc version release-20250101.0"),
            vec!["kvm".into(), "ptrace".into(), "systrap".into()],
            BTreeSet::new(),
        );
        assert!(
            !new.restore_creates && !new.root_netns_false_positive && new.leave_running_in_place
        );
        assert_eq!(new.default_platform, "systrap");
    }

    #[test]
    fn flags_are_parsed_from_runsc_flags_output() {
        let f = parse_flags("  -overlay2 value\n    \twrap mounts\n  -debug\n  -platform string\n");
        assert!(f.contains("overlay2") && f.contains("debug") && f.contains("platform"));
        assert!(!f.contains("wrap"));
    }
}
