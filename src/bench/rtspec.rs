//! `--runtime SPEC` parsing (pure): which binary a bench runtime is and
//! with which options it runs.
//!
//! Grammar: `[LABEL=]KIND[@PATH][:OPT[,OPT]...]`, KIND `runsc` or `runc`,
//! LABEL the runtime's name in reports (default: the spec itself), OPT a
//! bare platform name (`systrap`, `ptrace`, `kvm`) or `network=none|host`
//! or `overlay2=VALUE` (VALUE may itself hold `:`, as `root:memory`). runc
//! takes no options. Whether the binary exists and accepts the options is
//! checked later, against the binary (see `runtime`).

use super::BenchError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Runsc,
    Runc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSpec {
    /// The spec as the user wrote it: the runtime's label in reports.
    pub label: String,
    pub kind: Kind,
    /// `@PATH`: this binary instead of the default one.
    pub bin: Option<String>,
    /// runsc `--platform` (None: the binary's default).
    pub platform: Option<String>,
    /// runsc `--network` (`none` unless asked).
    pub network: String,
    /// runsc `--overlay2`.
    pub overlay2: Option<String>,
}

const PLATFORMS: [&str; 3] = ["systrap", "ptrace", "kvm"];

pub fn parse(spec: &str) -> Result<RuntimeSpec, BenchError> {
    let bad = |why: String| BenchError::BadSpec {
        spec: spec.to_string(),
        why,
    };
    let s = spec.trim();
    // A label is what precedes an '=' that comes before any ':' or '@'.
    let (label, s) = match s.split_once('=') {
        Some((l, rest)) if !l.contains(':') && !l.contains('@') => {
            if !crate::util::is_valid_name(l) {
                return Err(bad(format!(
                    "label {l:?} is not a valid name (letters, digits, '.', '_', '-')"
                )));
            }
            (Some(l), rest)
        }
        _ => (None, s),
    };
    let (head, opts) = match s.find(':') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (kind, bin) = match head.split_once('@') {
        Some((k, p)) => (k, Some(p)),
        None => (head, None),
    };
    let kind = match kind {
        "runsc" => Kind::Runsc,
        "runc" => Kind::Runc,
        other => {
            return Err(bad(format!(
                "unknown runtime {other:?}; use runsc, runsc:PLATFORM, runsc@/PATH or runc"
            )))
        }
    };
    if let Some(p) = bin {
        if !p.starts_with('/') {
            return Err(bad(format!(
                "{p:?} is not an absolute path; write runsc@/path/to/runsc"
            )));
        }
    }
    let mut r = RuntimeSpec {
        label: label.unwrap_or(s).to_string(),
        kind,
        bin: bin.map(str::to_string),
        platform: None,
        network: "none".into(),
        overlay2: None,
    };
    let Some(opts) = opts else { return Ok(r) };
    if r.kind == Kind::Runc {
        return Err(bad("runc takes no options; write plain runc".into()));
    }
    // No value holds ','; a ':' stays inside its value (root:memory).
    for opt in opts.split(',') {
        match opt.split_once('=') {
            None if PLATFORMS.contains(&opt) => {
                if r.platform.replace(opt.to_string()).is_some() {
                    return Err(bad("more than one platform".into()));
                }
            }
            None => {
                return Err(bad(format!(
                "unknown option {opt:?}; use a platform ({}), network=none|host or overlay2=VALUE",
                PLATFORMS.join(", ")
            )))
            }
            Some(("network", v)) if v == "none" || v == "host" => r.network = v.to_string(),
            Some(("network", v)) => {
                return Err(bad(format!(
                    "network={v} is not supported by the bench; use network=none or network=host"
                )))
            }
            Some(("overlay2", v)) if !v.is_empty() => r.overlay2 = Some(v.to_string()),
            Some(("platform", v)) if PLATFORMS.contains(&v) => {
                if r.platform.replace(v.to_string()).is_some() {
                    return Err(bad("more than one platform".into()));
                }
            }
            Some((k, v)) => {
                return Err(bad(format!(
                "unknown option {k}={v}; use a platform ({}), network=none|host or overlay2=VALUE",
                PLATFORMS.join(", ")
            )))
            }
        }
    }
    Ok(r)
}

/// Parses every spec; two with the same label are refused (their figures
/// would be indistinguishable).
pub fn parse_all(specs: &[String]) -> Result<Vec<RuntimeSpec>, BenchError> {
    let mut out: Vec<RuntimeSpec> = vec![];
    for s in specs {
        let r = parse(s)?;
        if out.iter().any(|o| o.label == r.label) {
            return Err(BenchError::BadSpec {
                spec: r.label,
                why: "given twice".into(),
            });
        }
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_the_issue_names() {
        let r = parse("runsc").unwrap();
        assert_eq!(
            (r.kind, r.bin, r.platform, r.network.as_str(), r.overlay2),
            (Kind::Runsc, None, None, "none", None)
        );
        assert_eq!(
            parse("runsc:systrap").unwrap().platform.as_deref(),
            Some("systrap")
        );
        assert_eq!(parse("runsc:kvm").unwrap().platform.as_deref(), Some("kvm"));
        let r = parse("runsc@/opt/gvisor/runsc").unwrap();
        assert_eq!(r.bin.as_deref(), Some("/opt/gvisor/runsc"));
        assert_eq!(r.label, "runsc@/opt/gvisor/runsc");
        assert_eq!(parse("runsc:network=host").unwrap().network, "host");
        assert_eq!(
            parse("runsc:overlay2=root:memory")
                .unwrap()
                .overlay2
                .as_deref(),
            Some("root:memory")
        );
        let r = parse("runsc@/x/runsc:ptrace,overlay2=none,network=host").unwrap();
        assert_eq!(
            (
                r.bin.as_deref(),
                r.platform.as_deref(),
                r.overlay2.as_deref(),
                r.network.as_str()
            ),
            (Some("/x/runsc"), Some("ptrace"), Some("none"), "host")
        );
        let r = parse("new=runsc@/x/runsc:systrap").unwrap();
        assert_eq!(
            (r.label.as_str(), r.bin.as_deref(), r.platform.as_deref()),
            ("new", Some("/x/runsc"), Some("systrap"))
        );
        let r = parse("runc").unwrap();
        assert_eq!((r.kind, r.bin), (Kind::Runc, None));
        assert_eq!(
            parse("runc@/usr/sbin/runc").unwrap().bin.as_deref(),
            Some("/usr/sbin/runc")
        );
    }

    #[test]
    fn bad_specs_are_one_line_user_errors() {
        for bad in [
            "",
            "docker",
            "runsc:",
            "runsc:xen",
            "runsc:ptrace,kvm",
            "runsc:network=sandbox",
            "runsc:overlay2=",
            "runsc:foo=bar",
            "runsc@relative/runsc",
            "runc:systrap",
            "a b=runc",
            "=runc",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::error::Kind::User, "{bad}");
            let msg = e.to_string();
            assert!(
                !msg.contains('\n') && msg.contains("runtime"),
                "{bad}: {msg}"
            );
        }
        let e = parse_all(&["runc".into(), "runc".into()]).unwrap_err();
        assert!(e.to_string().contains("given twice"), "{e}");
    }
}
