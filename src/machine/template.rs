//! The Lima template of a gvpod machine (`lima/gvpod.yaml`, embedded) and
//! its rendering for `gvpod machine init`.
//!
//! Invariants: the template stays usable on its own (`limactl create
//! lima/gvpod.yaml`); rendering only fills `param.gvpodBinary` (one line,
//! a JSON-quoted absolute path, which YAML reads as the same string) and
//! appends the top-level `cpus`/`memory`/`disk` keys the template leaves to
//! Lima's defaults, so a rendered template is the file plus what the user
//! asked for. Values are checked before they are written: a path that could
//! break the provisioning script's double quotes is refused.

use std::path::Path;

use super::{MachineError, Result};

/// `lima/gvpod.yaml`.
pub const TEMPLATE: &str = include_str!("../../lima/gvpod.yaml");

/// The template's line that `render` fills.
const BINARY_LINE: &str = "  gvpodBinary: \"\"";

/// What `gvpod machine init` asks for.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub cpus: Option<u32>,
    pub memory: Option<String>,
    pub disk: Option<String>,
}

/// The template with `binary` as `param.gvpodBinary` and the settings.
pub fn render(binary: &Path, s: &Settings) -> Result<String> {
    let text = binary.to_str().unwrap_or("");
    let bad = |why: &str| MachineError::BadBinary(binary.to_path_buf(), why.to_string());
    if !binary.is_absolute() || text.is_empty() {
        return Err(bad("its path must be absolute UTF-8"));
    }
    if text.chars().any(|c| c.is_control() || "\"\\$`".contains(c)) {
        return Err(bad(
            "its path must not contain quotes, backslashes, '$', '`' or control characters",
        ));
    }
    let mut out = String::with_capacity(TEMPLATE.len() + 128);
    let mut filled = false;
    for line in TEMPLATE.lines() {
        if line == BINARY_LINE {
            out.push_str(&format!("  gvpodBinary: {}", serde_json::json!(text)));
            filled = true;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    debug_assert!(filled, "lima/gvpod.yaml has no {BINARY_LINE:?} line");
    if let Some(c) = s.cpus {
        if c == 0 {
            return Err(MachineError::BadCpus(c));
        }
        out.push_str(&format!("cpus: {c}\n"));
    }
    for (key, what, v) in [
        ("memory", "--memory", &s.memory),
        ("disk", "--disk", &s.disk),
    ] {
        if let Some(v) = v {
            parse_size(what, v)?;
            out.push_str(&format!("{key}: {}\n", serde_json::json!(v)));
        }
    }
    Ok(out)
}

/// Bytes of a size as Lima reads it (`4GiB`, `4G`, `512MiB`, `1.5GiB`, a
/// plain number of bytes); at least 1 MiB.
pub fn parse_size(what: &'static str, s: &str) -> Result<u64> {
    let bad = || MachineError::BadSize {
        what,
        value: s.to_string(),
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = n * mult;
    if !(1024.0 * 1024.0..=1e18).contains(&bytes) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use saphyr::{LoadableYamlNode, YamlOwned};

    fn doc(text: &str) -> YamlOwned {
        YamlOwned::load_from_str(text)
            .expect("the template is YAML")
            .into_iter()
            .next()
            .expect("one document")
    }

    fn get<'a>(y: &'a YamlOwned, key: &str) -> &'a YamlOwned {
        y.as_mapping_get(key)
            .unwrap_or_else(|| panic!("the template has no {key:?}"))
    }

    fn text(y: &YamlOwned) -> String {
        y.as_str()
            .map(str::to_string)
            .or_else(|| y.as_integer().map(|i| i.to_string()))
            .or_else(|| y.as_bool().map(|b| b.to_string()))
            .unwrap_or_default()
    }

    fn seq(y: &YamlOwned) -> &Vec<YamlOwned> {
        y.as_vec().expect("a list")
    }

    #[test]
    fn images_cover_both_arches_pinned_by_digest_with_fallbacks() {
        let t = doc(TEMPLATE);
        let images = seq(get(&t, "images"));
        for arch in ["aarch64", "x86_64"] {
            let of_arch: Vec<_> = images
                .iter()
                .filter(|i| text(get(i, "arch")) == arch)
                .collect();
            // The first one Lima tries is pinned; an unpinned fallback follows.
            assert!(of_arch[0].as_mapping_get("digest").is_some(), "{arch}");
            assert!(
                of_arch.iter().any(|i| i.as_mapping_get("digest").is_none()),
                "{arch} has no fallback"
            );
            assert!(of_arch.len() >= 3, "{arch}");
        }
        for i in images {
            let loc = text(get(i, "location"));
            assert!(loc.starts_with("https://cloud.debian.org/"), "{loc}");
            assert!(loc.ends_with(".qcow2"), "{loc}");
            assert!(
                ["aarch64", "x86_64"].contains(&text(get(i, "arch")).as_str()),
                "{loc}"
            );
            if let Some(d) = i.as_mapping_get("digest") {
                let d = text(d);
                let (algo, hex) = d.split_once(':').expect("algo:hex");
                let len = match algo {
                    "sha256" => 64,
                    "sha512" => 128,
                    _ => panic!("digest algorithm {algo}"),
                };
                assert_eq!(hex.len(), len, "{d}");
                assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{d}");
            }
        }
    }

    #[test]
    fn the_api_socket_is_forwarded_and_zero_binds_reach_the_mac() {
        let t = doc(TEMPLATE);
        let fwd = seq(get(&t, "portForwards"));
        assert!(fwd.iter().any(|f| {
            f.as_mapping_get("guestSocket").map(text).as_deref() == Some("/run/gvpod/gvpod.sock")
                && f.as_mapping_get("hostSocket").map(text).as_deref()
                    == Some("{{.Dir}}/sock/gvpod.sock")
        }));
        assert!(fwd.iter().any(|f| {
            f.as_mapping_get("guestIP").map(text).as_deref() == Some("0.0.0.0")
                && f.as_mapping_get("guestIPMustBeZero").map(text).as_deref() == Some("true")
                && f.as_mapping_get("hostIP").map(text).as_deref() == Some("0.0.0.0")
        }));
        // Lima's rule: a port forward names a socket or ports, not both.
        for f in fwd {
            let socket = f.as_mapping_get("guestSocket").is_some();
            let ports = f.as_mapping_get("guestPortRange").is_some()
                || f.as_mapping_get("guestPort").is_some();
            assert!(socket != ports, "{f:?}");
        }
    }

    #[test]
    fn lima_rules_hold_mounts_provision_probes_params() {
        let t = doc(TEMPLATE);
        assert!(text(get(&t, "minimumLimaVersion")).starts_with("1."));
        let c = get(&t, "containerd");
        assert_eq!(text(get(c, "system")), "false");
        assert_eq!(text(get(c, "user")), "false");
        let mounts = seq(get(&t, "mounts"));
        assert!(mounts.iter().any(|m| text(get(m, "location")) == "~"
            && text(get(m, "writable")) == "true"
            && m.as_mapping_get("mountPoint").is_none()));
        let mut scripts = vec![];
        for p in seq(get(&t, "provision")) {
            assert!(
                ["system", "user", "boot", "dependency"].contains(&text(get(p, "mode")).as_str())
            );
            scripts.push(text(get(p, "script")));
        }
        for p in seq(get(&t, "probes")) {
            scripts.push(text(get(p, "script")));
        }
        for s in &scripts {
            assert!(s.starts_with("#!"), "a script must start with #!: {s}");
            // Comments may say why; no command may name kvm.
            assert!(
                s.lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .all(|l| !l.contains("kvm")),
                "kvm must never be chosen: {s}"
            );
        }
        // Every param is used where Lima expands it.
        let params = get(&t, "param").as_mapping().expect("param mapping");
        for k in params.keys() {
            let k = text(k);
            assert!(
                scripts
                    .iter()
                    .any(|s| s.contains(&format!("{{{{.Param.{k}}}}}"))),
                "param {k} unused"
            );
        }
        assert!(text(get(&t, "message")).contains("gvpod"));
        // What render fills and appends is not in the file already.
        assert!(TEMPLATE.lines().any(|l| l == BINARY_LINE));
        for key in ["cpus", "memory", "disk"] {
            assert!(t.as_mapping_get(key).is_none(), "{key}");
        }
    }

    #[test]
    fn the_template_scripts_pass_bash_n_and_shellcheck() {
        let t = doc(TEMPLATE);
        let dir = tempfile::tempdir().unwrap();
        let mut all = vec![];
        for key in ["provision", "probes"] {
            all.extend(seq(get(&t, key)).iter().map(|p| text(get(p, "script"))));
        }
        let have_shellcheck = std::process::Command::new("shellcheck")
            .arg("--version")
            .output()
            .is_ok();
        for (i, s) in all.iter().enumerate() {
            // Lima's template variables are filled in before the script runs.
            let s = s
                .replace("{{.Param.gvpodBinary}}", "/Users/me/gvpod")
                .replace("{{.User}}", "me");
            let f = dir.path().join(format!("s{i}.sh"));
            std::fs::write(&f, &s).unwrap();
            let o = std::process::Command::new("bash")
                .arg("-n")
                .arg(&f)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            if have_shellcheck {
                let o = std::process::Command::new("shellcheck")
                    .arg(&f)
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
            }
        }
    }

    #[test]
    fn render_fills_the_binary_and_appends_settings() {
        let s = Settings {
            cpus: Some(2),
            memory: Some("4GiB".into()),
            disk: Some("50GiB".into()),
        };
        let out = render(
            Path::new("/Users/me/.local/share/gvpod/machine/gvpod/gvpod"),
            &s,
        )
        .unwrap();
        let t = doc(&out);
        assert_eq!(
            text(get(get(&t, "param"), "gvpodBinary")),
            "/Users/me/.local/share/gvpod/machine/gvpod/gvpod"
        );
        assert_eq!(text(get(&t, "cpus")), "2");
        assert_eq!(text(get(&t, "memory")), "4GiB");
        assert_eq!(text(get(&t, "disk")), "50GiB");
        // Nothing asked, nothing appended.
        let bare = render(Path::new("/h/gvpod"), &Settings::default()).unwrap();
        assert!(doc(&bare).as_mapping_get("memory").is_none());
        for bad in ["rel/gvpod", "/a\"b", "/a$b", "/a`b", "/a\\b", "/a\nb"] {
            let e = render(Path::new(bad), &s).unwrap_err();
            assert_eq!(e.kind(), crate::error::Kind::User, "{bad}");
        }
        let zero = Settings {
            cpus: Some(0),
            ..Settings::default()
        };
        assert!(render(Path::new("/h/g"), &zero).is_err());
    }

    #[test]
    fn sizes_read_as_lima_reads_them() {
        let g = 1024u64 * 1024 * 1024;
        assert_eq!(parse_size("--memory", "4GiB").unwrap(), 4 * g);
        assert_eq!(parse_size("--memory", "4G").unwrap(), 4 * g);
        assert_eq!(parse_size("--memory", "512MiB").unwrap(), 512 * 1024 * 1024);
        assert_eq!(parse_size("--disk", "1.5GiB").unwrap(), 3 * g / 2);
        for bad in ["", "GiB", "4XB", "-1G", "1KiB", "4 GiB extra", "1e9"] {
            let e = parse_size("--disk", bad).unwrap_err();
            assert!(e.to_string().contains("--disk"), "{e}");
        }
    }
}
