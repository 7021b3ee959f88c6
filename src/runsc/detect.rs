//! Detects the runsc release and what this binary can do, once per binary:
//! the result is cached beside the state database, one file per binary
//! keyed by its path, size and mtime, because `runsc --version` alone costs
//! ~25 ms and pod start-up has to stay within a few ms of bare runsc.
//!
//! Every behaviour that differs between releases is decided by a probe of
//! this binary, never by its release date (users run 2022 to 2026 builds,
//! distribution rebuilds and dev builds whose version says nothing):
//! - what it accepts: `runsc flags` (top-level flags, their defaults and the
//!   default platform), `runsc help platforms`, `runsc help checkpoint`;
//! - where no flag tells, a message or path the binary's code carries
//!   (one scan of the executable): the restore that finds an existing
//!   container ("Container not found, creating new one", 20230327+) and the
//!   root-netns check on `/proc/sys/net/core/dev_weight` (20240807+, gVisor
//!   issue #10704; DESIGN.md fact 3). When the marker is missing gvpod takes
//!   the path that works on both sides: restore without a prior create
//!   (still accepted by newer releases) and the `/proc/sys/net` workaround
//!   (harmless where the check is already right).
//!
//! The release date is kept for display and for the snapshot compatibility
//! check (a snapshot restores only under the runsc that took it).

use std::collections::{BTreeMap, BTreeSet};
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Features {
    /// Platforms this runsc offers (`runsc help platforms`).
    pub platforms: Vec<String>,
    /// The platform runsc uses when none is given (`runsc flags`: the
    /// `-platform` default).
    pub default_platform: String,
    /// Top-level flags runsc accepts (`runsc flags`).
    pub flags: BTreeSet<String>,
    /// Boolean flags whose default is true (`(default true)` in `runsc flags`).
    pub flags_on_by_default: BTreeSet<String>,
    /// `runsc restore` creates the container itself and fails after a prior
    /// `runsc create` (DESIGN.md fact 5): the binary lacks the restore into
    /// an existing container, and `restore --direct` (20240501), so it is
    /// not a later build that dropped the fallback below.
    pub restore_creates: bool,
    /// `runsc restore` without a prior `create` still creates the container
    /// ("Container not found, creating new one" in the binary: 20240729).
    #[serde(default)]
    pub restore_may_create: bool,
    /// The root-netns check reads /proc/sys/net/core/rmem_default, which
    /// kernels >= 6.11 show in every netns (DESIGN.md fact 3): the binary
    /// does not carry the newer dev_weight check.
    pub root_netns_false_positive: bool,
    /// `checkpoint --leave-running` keeps the sandbox running in place, and
    /// a save that fails with it leaves the sandbox running (20240415+,
    /// the release that also brought `checkpoint --compression`, which is
    /// what `runsc help checkpoint` shows).
    pub leave_running_in_place: bool,
    /// `runsc port-forward --stream SOCK ID PORT` exists (20240729 has it,
    /// 20221219 not): one connection to 127.0.0.1:PORT inside the sandbox's
    /// netstack, handed over a unix socket that runsc dials.
    #[serde(default)]
    pub port_forward_stream: bool,
}

impl Features {
    pub fn has_flag(&self, name: &str) -> bool {
        self.flags.contains(name)
    }

    /// A save can reset the pod's TCP connections instead of failing, when
    /// the sandbox was created with `--net-disconnect-ok` (REFERENCES.md:
    /// from 20240520, default false until 20241021; set at create/restore).
    pub fn can_reset_tcp(&self) -> bool {
        self.has_flag("net-disconnect-ok")
    }

    /// A save carries open TCP connections over (`--allow-live-tcp-migration`,
    /// on by default where it exists): no connection can refuse a save.
    pub fn migrates_tcp(&self) -> bool {
        self.flags_on_by_default
            .contains("allow-live-tcp-migration")
    }
}

/// Bumped whenever [`Features`] changes meaning, so old cache files are re-probed.
const CACHE_FORMAT: u32 = 4;

#[derive(Serialize, Deserialize)]
struct Cache {
    format: u32,
    bin: PathBuf,
    size: u64,
    mtime_ns: i128,
    version: Version,
    features: Features,
}

/// The cache file of one binary: `runsc-features-<12 hex of its path>.json`,
/// so data roots used with two runsc binaries in turn do not re-probe.
fn cache_path(cache_dir: &Path, bin: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(bin.as_os_str().as_encoded_bytes());
    cache_dir.join(format!("runsc-features-{}.json", &hex::encode(h)[..12]))
}

pub fn detect(bin: &Path, cache_dir: &Path) -> Result<(Version, Features)> {
    let meta = std::fs::metadata(bin).map_err(|source| RunscError::Spawn {
        bin: bin.to_owned(),
        source,
    })?;
    let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
    let cache_path = cache_path(cache_dir, bin);
    if let Ok(text) = std::fs::read(&cache_path) {
        if let Ok(c) = serde_json::from_slice::<Cache>(&text) {
            if c.format == CACHE_FORMAT
                && c.bin == bin
                && c.size == meta.len()
                && c.mtime_ns == mtime_ns
            {
                return Ok((c.version, c.features));
            }
        }
    }
    let version = parse_version(&output(bin, &["--version"])?);
    let probe = Probe {
        platforms: output(bin, &["help", "platforms"])?,
        flags: output(bin, &["flags"])?,
        help_checkpoint: output(bin, &["help", "checkpoint"])?,
        help_restore: output(bin, &["help", "restore"])?,
        help_port_forward: output(bin, &["help", "port-forward"])?,
        markers: markers(bin),
    };
    let features = probe.features();
    let cache = Cache {
        format: CACHE_FORMAT,
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

/// Code markers looked for in the runsc executable (see the module docs).
const RESTORE_INTO_CREATED: &str = "Container not found, creating new one";
const DEV_WEIGHT_CHECK: &str = "/proc/sys/net/core/dev_weight";

/// Which of the markers the executable at `bin` contains (one read; an
/// unreadable binary contains none, which picks the paths safe on all).
fn markers(bin: &Path) -> BTreeMap<&'static str, bool> {
    let data = std::fs::read(bin).unwrap_or_default();
    [RESTORE_INTO_CREATED, DEV_WEIGHT_CHECK]
        .into_iter()
        .map(|m| (m, memchr::memmem::find(&data, m.as_bytes()).is_some()))
        .collect()
}

/// What the binary printed and contains; turned into [`Features`] without I/O.
struct Probe {
    platforms: String,
    flags: String,
    help_checkpoint: String,
    help_restore: String,
    help_port_forward: String,
    markers: BTreeMap<&'static str, bool>,
}

impl Probe {
    fn features(&self) -> Features {
        let mut platforms = parse_platforms(&self.platforms);
        let flags = parse_flags(&self.flags);
        if platforms.is_empty() {
            platforms.push("ptrace".into());
        }
        let default_platform = flag_default(&self.flags, "platform")
            .filter(|p| platforms.contains(p))
            .unwrap_or_else(|| platforms[0].clone());
        let marker = |m: &str| self.markers.get(m).copied().unwrap_or(false);
        Features {
            default_platform,
            platforms,
            flags_on_by_default: flags
                .iter()
                .filter(|f| flag_default(&self.flags, f).as_deref() == Some("true"))
                .cloned()
                .collect(),
            flags,
            restore_creates: !marker(RESTORE_INTO_CREATED)
                && !parse_flags(&self.help_restore).contains("direct"),
            restore_may_create: marker(RESTORE_INTO_CREATED),
            root_netns_false_positive: !marker(DEV_WEIGHT_CHECK),
            leave_running_in_place: parse_flags(&self.help_checkpoint).contains("compression"),
            port_forward_stream: parse_flags(&self.help_port_forward).contains("stream"),
        }
    }
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

/// The `(default X)` Go's flag package prints in the help of flag `name`
/// (quotes removed); `None` when it prints none (false, empty or zero).
fn flag_default(text: &str, name: &str) -> Option<String> {
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        let Some(rest) = l.trim_start().strip_prefix('-') else {
            continue;
        };
        if rest.split_whitespace().next() != Some(name) {
            continue;
        }
        // The usage text follows on indented lines up to the next flag.
        let mut usage = rest.to_string();
        while let Some(n) = lines.peek() {
            if n.trim_start().starts_with('-') {
                break;
            }
            usage.push(' ');
            usage.push_str(n.trim());
            lines.next();
        }
        let i = usage.rfind("(default ")?;
        let v = usage[i + 9..].trim_end().strip_suffix(')')?;
        return Some(v.trim_matches('"').to_string());
    }
    None
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

    /// Excerpts of what Debian 12's runsc (20221219) prints.
    const FLAGS_2022: &str = "  -overlay2 value\n    \twrap mounts with overlayfs.\n  -platform string\n    \tspecifies which platform to use: ptrace (default), kvm. (default \"ptrace\")\n  -debug\n    \tenable debug logging.\n";
    /// Excerpts of what Debian trixie's runsc (20240729) prints.
    const FLAGS_2024: &str = "  -gso\n    \tenable host segmentation offload if it is supported by a network device. (default true)\n  -net-disconnect-ok\n    \tIndicates whether the link endpoint capability CapabilityDisconnectOk should be set. This allows open connections to be disconnected upon save.\n  -overlay2 value\n    \twrap mounts with overlayfs. (default root:self)\n  -platform string\n    \tspecifies which platform to use: systrap (default), ptrace, kvm. (default \"systrap\")\n";
    const CKPT_2024: &str = "checkpoint [flags] <container id> - save current state of container.\n  -compression value\n    \tcompress checkpoint image on disk. Values: none|flate-best-speed. (default flate-best-speed)\n  -image-path string\n    \tdirectory path to saved container image\n  -leave-running\n    \trestart the container after checkpointing\n";
    const CKPT_2022: &str = "checkpoint [flags] <container id> - save current state of container.\n  -image-path string\n    \tdirectory path to saved container image\n  -leave-running\n    \trestart the container after checkpointing\n";

    #[test]
    fn features_come_from_what_the_binary_says_not_its_date() {
        let old = Probe {
            platforms: "kvm\nptrace\n".into(),
            flags: FLAGS_2022.into(),
            help_checkpoint: CKPT_2022.into(),
            help_restore: "restore [flags] <container id>\n  -detach\n".into(),
            help_port_forward: "Subcommand port-forward not understood\nhelp [<subcommand>]:\n"
                .into(),
            markers: BTreeMap::new(),
        }
        .features();
        assert!(!old.restore_may_create);
        assert!(old.restore_creates && old.root_netns_false_positive);
        assert!(!old.leave_running_in_place && !old.can_reset_tcp() && !old.migrates_tcp());
        assert!(!old.port_forward_stream);
        assert_eq!(old.default_platform, "ptrace");

        let mut markers = BTreeMap::new();
        markers.insert(RESTORE_INTO_CREATED, true);
        let new = Probe {
            platforms: "kvm\nsystrap\nptrace\n".into(),
            flags: FLAGS_2024.into(),
            help_checkpoint: CKPT_2024.into(),
            help_restore: "  -detach\n  -direct\n".into(),
            help_port_forward: "OPTIONS:\n  -stream string\n    \tStream mode\n".into(),
            markers: markers.clone(),
        }
        .features();
        assert!(!new.restore_creates && new.restore_may_create && new.root_netns_false_positive);
        assert!(new.leave_running_in_place && new.can_reset_tcp() && !new.migrates_tcp());
        assert!(new.port_forward_stream);
        assert_eq!(new.default_platform, "systrap");
        assert!(new.flags_on_by_default.contains("gso"));
        assert!(!new.flags_on_by_default.contains("net-disconnect-ok"));

        // A later build: the dev_weight check, TCP migration on by default.
        markers.insert(DEV_WEIGHT_CHECK, true);
        markers.remove(RESTORE_INTO_CREATED);
        let flags = format!("{FLAGS_2024}  -allow-live-tcp-migration\n    \tcarry TCP connections. (default true)\n");
        let later = Probe {
            platforms: "systrap\nptrace\n".into(),
            flags,
            help_checkpoint: CKPT_2024.into(),
            help_restore: "  -detach\n  -direct\n".into(),
            help_port_forward: "OPTIONS:\n  -stream string\n    \tStream mode\n".into(),
            markers,
        }
        .features();
        assert!(!later.root_netns_false_positive && later.migrates_tcp());
        // Without the fallback, a later build gets create + restore.
        assert!(!later.restore_creates && !later.restore_may_create);
    }

    #[test]
    fn flags_and_defaults_are_parsed_from_runsc_flags_output() {
        let f = parse_flags("  -overlay2 value\n    \twrap mounts\n  -debug\n  -platform string\n");
        assert!(f.contains("overlay2") && f.contains("debug") && f.contains("platform"));
        assert!(!f.contains("wrap"));
        assert_eq!(
            flag_default(FLAGS_2024, "platform").as_deref(),
            Some("systrap")
        );
        assert_eq!(
            flag_default(FLAGS_2024, "overlay2").as_deref(),
            Some("root:self")
        );
        assert_eq!(flag_default(FLAGS_2024, "net-disconnect-ok"), None);
        assert_eq!(flag_default(FLAGS_2022, "overlay2"), None);
        assert_eq!(flag_default(FLAGS_2022, "nosuch"), None);
    }
}
