//! OCI runtime bundle builder: `config.json` (oci-spec builders) from the
//! image config and the pod's options, the process spec of `runsc exec`
//! (same capability rules as the main process), and the pod's rootfs
//! assembly. Runs nothing; mounting the rootfs is the only host change it
//! makes.

pub mod devuser;
mod error;
pub mod etc;
mod options;
mod rootdir;
mod rootfs;

pub use error::BundleError;
pub use options::{
    check_env, parse_cpus, parse_env_file, parse_expose, parse_label, parse_log_max_file,
    parse_log_max_size, parse_memory, parse_restart, parse_storage_opt, parse_storage_size,
    parse_volume, LogLimits, PodOptions, RestartPolicy, Volume,
};
pub use rootfs::{
    check_executable, mount_bounded, mount_overlay, resolve_user, unmount, ExecProblem, RootfsPaths,
};

use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilities, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, Process, ProcessBuilder, RootBuilder, Spec, UserBuilder,
};
use serde::{Deserialize, Serialize};

/// The pod's main process after merging image config and options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub terminal: bool,
}

/// Merges the image's Entrypoint/Cmd/Env/WorkingDir/User with the pod's
/// options the docker way and resolves the user inside `rootfs`.
pub fn resolve_process(
    image_ref: &str,
    image: &ImageConfiguration,
    opts: &PodOptions,
    rootfs: &Path,
) -> Result<ProcessSpec, BundleError> {
    let cfg = image.config().clone().unwrap_or_default();
    let mut args: Vec<String> = match &opts.entrypoint {
        Some(ep) if ep.is_empty() => vec![],
        Some(ep) => vec![ep.clone()],
        None => cfg.entrypoint().clone().unwrap_or_default(),
    };
    if !opts.cmd.is_empty() {
        args.extend(opts.cmd.iter().cloned());
    } else if opts.entrypoint.is_none() {
        args.extend(cfg.cmd().clone().unwrap_or_default());
    }
    if args.is_empty() {
        return Err(BundleError::NoCommand(image_ref.to_string()));
    }
    let user = opts
        .user
        .clone()
        .or_else(|| cfg.user().clone().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "0".to_string());
    let resolved = resolve_user(rootfs, &user)?;
    let env = merge_env(
        cfg.env().as_deref().unwrap_or(&[]),
        &opts.env,
        opts.tty,
        resolved.home.as_deref(),
    );
    let cwd = opts
        .workdir
        .clone()
        .or_else(|| cfg.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_string());
    if !cwd.starts_with('/') {
        return Err(BundleError::BadValue {
            what: "working directory",
            value: cwd,
            hint: "it must be an absolute path",
        });
    }
    Ok(ProcessSpec {
        args,
        env,
        cwd,
        uid: resolved.uid,
        gid: resolved.gid,
        additional_gids: resolved.additional_gids,
        terminal: opts.tty,
    })
}

/// Image env, then PATH/HOME/TERM defaults, then the pod's `-e` entries
/// (a bare `KEY` takes the value from gvpod's own environment, or is dropped).
pub fn merge_env(
    image_env: &[String],
    pod_env: &[String],
    tty: bool,
    home: Option<&str>,
) -> Vec<String> {
    let mut out: Vec<(String, String)> = vec![];
    let set = |k: &str, v: &str, out: &mut Vec<(String, String)>| {
        if let Some(e) = out.iter_mut().find(|(kk, _)| kk == k) {
            e.1 = v.to_string();
        } else {
            out.push((k.to_string(), v.to_string()));
        }
    };
    for e in image_env {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        set(k, v, &mut out);
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        set(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            &mut out,
        );
    }
    if !out.iter().any(|(k, _)| k == "HOME") {
        set("HOME", home.unwrap_or("/root"), &mut out);
    }
    if tty && !out.iter().any(|(k, _)| k == "TERM") {
        set("TERM", "xterm", &mut out);
    }
    for e in pod_env {
        match e.split_once('=') {
            Some((k, v)) => set(k, v, &mut out),
            None => {
                if let Ok(v) = std::env::var(e) {
                    set(e, &v, &mut out)
                }
            }
        }
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Docker's default capability set.
fn default_caps() -> Vec<Capability> {
    use Capability::*;
    vec![
        Chown,
        DacOverride,
        Fsetid,
        Fowner,
        Mknod,
        NetRaw,
        Setgid,
        Setuid,
        Setfcap,
        Setpcap,
        NetBindService,
        SysChroot,
        Kill,
        AuditWrite,
    ]
}

/// The capabilities of a pod's processes: docker's default set as the
/// bounding set, and as the effective and permitted sets of root only (a
/// non-root process starts with none, as under docker). Every set is given:
/// oci-spec fills an unset one with its own defaults.
fn capabilities(root_user: bool) -> Result<LinuxCapabilities, BundleError> {
    let caps: std::collections::HashSet<Capability> = default_caps().into_iter().collect();
    let empty = std::collections::HashSet::new();
    let granted = if root_user {
        caps.clone()
    } else {
        empty.clone()
    };
    Ok(LinuxCapabilitiesBuilder::default()
        .bounding(caps)
        .permitted(granted.clone())
        .effective(granted)
        .inheritable(empty.clone())
        .ambient(empty)
        .build()?)
}

/// The process spec of `runsc exec --process` for a process `p` in a
/// running pod: its user, command, environment and terminal, with the main
/// process's capability rules. No rlimits and no `noNewPrivileges` (unset,
/// not oci-spec's defaults): the process gets the sandbox's.
pub fn exec_process(p: &ProcessSpec) -> Result<Process, BundleError> {
    let mut process = process_builder(p)?.build()?;
    process.set_rlimits(None).set_no_new_privileges(None);
    Ok(process)
}

/// A process builder with `p`'s user, command, environment, working
/// directory, terminal and capabilities set.
fn process_builder(p: &ProcessSpec) -> Result<ProcessBuilder, BundleError> {
    Ok(ProcessBuilder::default()
        .terminal(p.terminal)
        .user(
            UserBuilder::default()
                .uid(p.uid)
                .gid(p.gid)
                .additional_gids(p.additional_gids.clone())
                .build()?,
        )
        .args(p.args.clone())
        .env(p.env.clone())
        .cwd(PathBuf::from(&p.cwd))
        .capabilities(capabilities(p.uid == 0)?))
}

/// Everything `build_spec` needs besides the process.
pub struct SpecInput<'a> {
    pub opts: &'a PodOptions,
    pub hostname: &'a str,
    /// cgroup path (relative, e.g. "gvpod/<id>"), applied by runsc.
    pub cgroups_path: &'a str,
    /// Files in the bundle bound over /etc/hostname, /etc/hosts, /etc/resolv.conf
    /// (and the pod's ssh host keys over [`devuser::HOST_KEYS_DIR`], read-only).
    pub etc_files: &'a [(PathBuf, &'static str)],
    /// gvpod's own read-only binds (its helpers directory, see `pod::route`).
    pub readonly_binds: &'a [(PathBuf, &'static str)],
    /// The pod's network namespace (a pinned file), joined by the sandbox.
    pub netns: Option<&'a Path>,
}

/// Builds the OCI runtime spec of a pod.
pub fn build_spec(p: &ProcessSpec, input: &SpecInput) -> Result<Spec, BundleError> {
    let opts = input.opts;
    let process = process_builder(p)?
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(1_048_576u64)
            .soft(1_048_576u64)
            .build()?])
        .no_new_privileges(false)
        .build()?;

    let mut mounts: Vec<Mount> = oci_spec::runtime::get_default_mounts();
    // oci-spec's defaults already carry /proc, /dev, /sys and /sys/fs/cgroup.
    for (src, dest) in input.etc_files {
        // The pod's ssh host keys: read-only (gvpod owns them).
        mounts.push(bind_mount(src, dest, *dest == devuser::HOST_KEYS_DIR)?);
    }
    for (src, dest) in input.readonly_binds {
        mounts.push(bind_mount(src, dest, true)?);
    }
    for v in &opts.volumes {
        mounts.push(bind_mount(&v.host, &v.pod, v.readonly)?);
    }

    let mut res = LinuxResourcesBuilder::default();
    if let Some(m) = opts.memory {
        res = res.memory(LinuxMemoryBuilder::default().limit(m as i64).build()?);
    }
    if let Some(c) = opts.cpus {
        let period = 100_000u64;
        res = res.cpu(
            LinuxCpuBuilder::default()
                .period(period)
                .quota((c * period as f64).round() as i64)
                .build()?,
        );
    }
    if let Some(n) = opts.pids_limit {
        res = res.pids(LinuxPidsBuilder::default().limit(n).build()?);
    }
    let mut linux = oci_spec::runtime::Linux::default();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    if let Some(path) = input.netns {
        namespaces.retain(|n| n.typ() != oci_spec::runtime::LinuxNamespaceType::Network);
        namespaces.push(
            oci_spec::runtime::LinuxNamespaceBuilder::default()
                .typ(oci_spec::runtime::LinuxNamespaceType::Network)
                .path(path)
                .build()?,
        );
    }
    let base = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(linux.masked_paths().clone().unwrap_or_default())
        .readonly_paths(linux.readonly_paths().clone().unwrap_or_default())
        .resources(res.build()?)
        .cgroups_path(PathBuf::from(format!("/{}", input.cgroups_path)))
        .build()?;
    linux = base;

    let mut spec = Spec::default();
    spec.set_process(Some(process))
        .set_root(Some(
            RootBuilder::default()
                .path("rootfs")
                .readonly(opts.read_only)
                .build()?,
        ))
        .set_hostname(Some(input.hostname.to_string()))
        .set_mounts(Some(mounts))
        .set_linux(Some(linux));
    Ok(spec)
}

fn bind_mount(src: &Path, dest: &str, ro: bool) -> Result<Mount, BundleError> {
    let mut o = vec!["rbind".to_string(), "rprivate".to_string()];
    o.push(if ro { "ro" } else { "rw" }.to_string());
    Ok(MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(src)
        .options(o)
        .build()?)
}

/// Writes `config.json` into the bundle atomically (temp file + rename),
/// fsynced first when `sync` (see [`crate::util::write_replacing`]).
pub fn write_config(bundle: &Path, spec: &Spec, sync: bool) -> Result<(), BundleError> {
    let path = bundle.join("config.json");
    let data = serde_json::to_vec_pretty(spec).map_err(|e| BundleError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    crate::util::write_replacing(&path, &data, sync)
        .map_err(|source| BundleError::Io { path, source })
}

/// Whether the OCI spec `data` (a `config.json`) has a mount at `dest`;
/// `None` when it cannot be read as one.
pub fn spec_mounts_at(data: &[u8], dest: &str) -> Option<bool> {
    let v: serde_json::Value = serde_json::from_slice(data).ok()?;
    let mounts = v.get("mounts")?.as_array()?;
    Some(
        mounts
            .iter()
            .any(|m| m.get("destination").and_then(|d| d.as_str()) == Some(dest)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use options::Volume;

    fn image(entry: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageConfiguration {
        let mut c = oci_spec::image::ConfigBuilder::default();
        if let Some(e) = entry {
            c = c.entrypoint(e.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        }
        if let Some(x) = cmd {
            c = c.cmd(x.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        }
        c = c
            .env(vec!["PATH=/bin".to_string(), "A=image".to_string()])
            .working_dir("/srv");
        oci_spec::image::ImageConfigurationBuilder::default()
            .config(c.build().unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn command_merges_the_docker_way() {
        let d = tempfile::tempdir().unwrap();
        let img = image(Some(&["/ep"]), Some(&["a"]));
        let mut o = PodOptions::default();
        assert_eq!(
            resolve_process("i", &img, &o, d.path()).unwrap().args,
            ["/ep", "a"]
        );
        o.cmd = vec!["b".into()];
        assert_eq!(
            resolve_process("i", &img, &o, d.path()).unwrap().args,
            ["/ep", "b"]
        );
        o.entrypoint = Some("/x".into());
        o.cmd = vec![];
        assert_eq!(
            resolve_process("i", &img, &o, d.path()).unwrap().args,
            ["/x"]
        );
        let none = image(None, None);
        let e = resolve_process("busy:1", &none, &PodOptions::default(), d.path()).unwrap_err();
        assert!(e.to_string().contains("busy:1 has no command"), "{e}");
    }

    #[test]
    fn env_image_then_defaults_then_pod() {
        let env = merge_env(
            &["PATH=/bin".into(), "A=image".into()],
            &["A=pod".into(), "B=1".into()],
            true,
            None,
        );
        assert_eq!(
            env,
            ["PATH=/bin", "A=pod", "HOME=/root", "TERM=xterm", "B=1"]
        );
    }

    /// What `runsc exec --process` got when exec built it by hand: the
    /// same keys, the same capability sets (an empty set and an absent one
    /// mean the same to runsc), nothing else.
    #[test]
    fn exec_process_matches_the_hand_built_spec() {
        let caps = [
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FSETID",
            "CAP_FOWNER",
            "CAP_MKNOD",
            "CAP_NET_RAW",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETFCAP",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT",
            "CAP_KILL",
            "CAP_AUDIT_WRITE",
        ];
        let set = |v: &serde_json::Value| -> std::collections::BTreeSet<String> {
            v.as_array()
                .map(|a| a.iter().map(|c| c.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        let all: std::collections::BTreeSet<String> = caps.iter().map(|c| c.to_string()).collect();
        for (uid, granted) in [(0, all.clone()), (1000, Default::default())] {
            let p = ProcessSpec {
                args: vec!["sh".into(), "-c".into(), "id".into()],
                env: vec!["PATH=/bin".into()],
                cwd: "/tmp".into(),
                uid,
                gid: 100,
                additional_gids: vec![10],
                terminal: true,
            };
            let j = serde_json::to_value(exec_process(&p).unwrap()).unwrap();
            let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                ["args", "capabilities", "cwd", "env", "terminal", "user"],
                "{j}"
            );
            assert_eq!(
                j["user"],
                serde_json::json!({"uid": uid, "gid": 100, "additionalGids": [10]})
            );
            assert_eq!(j["args"], serde_json::json!(["sh", "-c", "id"]));
            assert_eq!(j["env"], serde_json::json!(["PATH=/bin"]));
            assert_eq!(j["cwd"], "/tmp");
            assert_eq!(j["terminal"], true);
            let c = &j["capabilities"];
            assert_eq!(set(&c["bounding"]), all, "{c}");
            assert_eq!(set(&c["effective"]), granted, "{c}");
            assert_eq!(set(&c["permitted"]), granted, "{c}");
            assert!(set(&c["inheritable"]).is_empty() && set(&c["ambient"]).is_empty());
        }
    }

    #[test]
    fn spec_carries_limits_and_volumes() {
        let d = tempfile::tempdir().unwrap();
        let mut o = PodOptions {
            memory: Some(256 << 20),
            cpus: Some(1.5),
            pids_limit: Some(64),
            read_only: true,
            ..Default::default()
        };
        o.volumes.push(Volume {
            host: d.path().to_owned(),
            pod: "/data".into(),
            readonly: true,
        });
        let p = resolve_process("i", &image(None, Some(&["sh"])), &o, d.path()).unwrap();
        let s = build_spec(
            &p,
            &SpecInput {
                opts: &o,
                hostname: "h",
                cgroups_path: "gvpod/x",
                etc_files: &[],
                readonly_binds: &[(PathBuf::from("/var/lib/gvpod/helpers"), "/dev/gvpod")],
                netns: Some(Path::new("/var/lib/gvpod/netns/x")),
            },
        )
        .unwrap();
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["linux"]["resources"]["memory"]["limit"], 256 << 20);
        assert_eq!(j["linux"]["resources"]["cpu"]["quota"], 150000);
        assert_eq!(j["linux"]["resources"]["pids"]["limit"], 64);
        assert_eq!(j["linux"]["cgroupsPath"], "/gvpod/x");
        let ns = j["linux"]["namespaces"].as_array().unwrap();
        let net: Vec<_> = ns.iter().filter(|n| n["type"] == "network").collect();
        assert_eq!(net.len(), 1);
        assert_eq!(net[0]["path"], "/var/lib/gvpod/netns/x");
        assert_eq!(j["root"]["readonly"], true);
        assert_eq!(j["process"]["cwd"], "/srv");
        let m = j["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/data")
            .unwrap();
        assert!(m["options"].as_array().unwrap().contains(&"ro".into()));
        let h = j["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/dev/gvpod")
            .unwrap();
        assert_eq!(h["source"], "/var/lib/gvpod/helpers");
        assert!(h["options"].as_array().unwrap().contains(&"ro".into()));
    }
}
