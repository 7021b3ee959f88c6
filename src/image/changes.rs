//! Dockerfile-like `--change` instructions applied to an image config, as in
//! `docker import --change`.
//!
//! Supported: `CMD`, `ENTRYPOINT` (JSON array form, or shell form which
//! becomes `["/bin/sh", "-c", …]`), `ENV K=V …` (and the legacy `ENV K V`),
//! `LABEL k=v …`, `EXPOSE 80 443/tcp 53/udp 8000-8002`, `WORKDIR`, `USER`,
//! `STOPSIGNAL`, `VOLUME`. Keywords are case-insensitive; values follow the
//! Dockerfile quoting rules for words (single quotes, double quotes,
//! backslash escapes). Anything else is an error naming the instruction.

use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use oci_spec::image::Config;

use super::ImageError;

const SUPPORTED: &str = "CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR";

/// Applies `changes`, in order, to `config`.
pub fn apply(config: &mut Config, changes: &[String]) -> Result<(), ImageError> {
    for change in changes {
        apply_one(config, change).map_err(|reason| ImageError::InvalidChange {
            change: change.clone(),
            reason,
        })?;
    }
    Ok(())
}

fn apply_one(config: &mut Config, change: &str) -> Result<(), String> {
    let change = change.trim();
    let (keyword, rest) = match change.split_once(char::is_whitespace) {
        Some((k, r)) => (k, r.trim()),
        None => (change, ""),
    };
    if keyword.is_empty() {
        return Err(format!("empty instruction; supported: {SUPPORTED}"));
    }
    let kw = keyword.to_ascii_uppercase();
    let known = matches!(
        kw.as_str(),
        "CMD"
            | "ENTRYPOINT"
            | "ENV"
            | "EXPOSE"
            | "LABEL"
            | "STOPSIGNAL"
            | "USER"
            | "VOLUME"
            | "WORKDIR"
    );
    if !known {
        return Err(format!(
            "unknown instruction {keyword}; supported: {SUPPORTED}"
        ));
    }
    if rest.is_empty() {
        return Err(format!("{kw} needs an argument"));
    }
    match kw.as_str() {
        "CMD" => {
            config.set_cmd(Some(command(rest)));
        }
        "ENTRYPOINT" => {
            config.set_entrypoint(Some(command(rest)));
        }
        "ENV" => {
            let mut env = config.env().clone().unwrap_or_default();
            for (k, v) in pairs("ENV", rest)? {
                let prefix = format!("{k}=");
                env.retain(|e| !e.starts_with(&prefix) && e != &k);
                env.push(format!("{k}={v}"));
            }
            config.set_env(Some(env));
        }
        "LABEL" => {
            let labels = config.labels_mut().get_or_insert_with(Default::default);
            for (k, v) in pairs("LABEL", rest)? {
                labels.insert(k, v);
            }
        }
        "EXPOSE" => {
            let mut ports = config.exposed_ports().clone().unwrap_or_default();
            for w in words(rest)? {
                for p in expose(&w)? {
                    if !ports.contains(&p) {
                        ports.push(p);
                    }
                }
            }
            config.set_exposed_ports(Some(ports));
        }
        "USER" => {
            let user = single("USER", rest)?;
            config.set_user(Some(user));
        }
        "WORKDIR" => {
            let dir = single("WORKDIR", rest)?;
            let base = config.working_dir().clone().unwrap_or_else(|| "/".into());
            config.set_working_dir(Some(workdir(&base, &dir)));
        }
        "STOPSIGNAL" => {
            let sig = single("STOPSIGNAL", rest)?;
            config.set_stop_signal(Some(signal(&sig)?));
        }
        "VOLUME" => {
            let list = match json_array(rest) {
                Some(v) => v,
                None => words(rest)?,
            };
            let mut vols = config.volumes().clone().unwrap_or_default();
            for v in list {
                if !v.starts_with('/') {
                    return Err(format!("volume {v:?} is not an absolute path"));
                }
                if !vols.contains(&v) {
                    vols.push(v);
                }
            }
            config.set_volumes(Some(vols));
        }
        _ => unreachable!("keyword checked above"),
    }
    Ok(())
}

/// JSON exec form, else shell form run by `/bin/sh -c`.
fn command(rest: &str) -> Vec<String> {
    json_array(rest).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
}

/// `["a", "b"]` → `Some(vec)`; anything that is not a JSON array of strings → `None`
/// (Docker then falls back to the shell form).
fn json_array(rest: &str) -> Option<Vec<String>> {
    if !rest.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(rest).ok()
}

fn single(kw: &str, rest: &str) -> Result<String, String> {
    let w = words(rest)?;
    match w.as_slice() {
        [one] if !one.is_empty() => Ok(one.clone()),
        _ => Err(format!("{kw} takes exactly one argument")),
    }
}

/// `K=V K2="v 2"` or the legacy `K some value` form.
fn pairs(kw: &str, rest: &str) -> Result<Vec<(String, String)>, String> {
    let ws = words(rest)?;
    let first = ws.first().ok_or_else(|| format!("{kw} needs KEY=VALUE"))?;
    if !first.contains('=') {
        // Legacy form: the first word is the key, the rest of the line the value.
        let value = ws[1..].join(" ");
        if ws.len() < 2 {
            return Err(format!("{kw} needs KEY=VALUE"));
        }
        return Ok(vec![(first.clone(), value)]);
    }
    ws.iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("{kw}: {w:?} is not KEY=VALUE")),
        })
        .collect()
}

/// Splits into words with Dockerfile quoting: whitespace separates words;
/// `'…'` is literal; `"…"` allows `\"`, `\\` and `\$`; `\x` outside quotes is `x`.
fn words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some('\'') => {
                if c == '\'' {
                    quote = None;
                } else {
                    cur.push(c);
                }
            }
            Some(_) => match c {
                '"' => quote = None,
                '\\' => match chars.next() {
                    Some(n @ ('"' | '\\' | '$')) => cur.push(n),
                    Some(n) => {
                        cur.push('\\');
                        cur.push(n);
                    }
                    None => return Err("trailing backslash".into()),
                },
                _ => cur.push(c),
            },
            None => match c {
                c if c.is_whitespace() => {
                    if in_word {
                        out.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                }
                '\'' | '"' => {
                    quote = Some(c);
                    in_word = true;
                }
                '\\' => {
                    cur.push(chars.next().ok_or("trailing backslash")?);
                    in_word = true;
                }
                _ => {
                    cur.push(c);
                    in_word = true;
                }
            },
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `80`, `80/tcp`, `53/udp`, `8000-8002/tcp` → normalised `port/proto` keys.
fn expose(w: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = match w.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (w, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("port {w:?}: protocol must be tcp, udp or sctp"));
    }
    let port = |s: &str| -> Result<u16, String> {
        match s.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(format!("port {w:?}: {s:?} is not a port number (1-65535)")),
        }
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(ports)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(format!("port range {w:?} is reversed"));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// Resolves a possibly relative WORKDIR against the current one, lexically.
fn workdir(base: &str, dir: &str) -> String {
    let joined = Path::new(base).join(dir);
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out.to_string_lossy().into_owned()
}

/// `SIGTERM`, `term`, `15`, `SIGRTMIN+3` → canonical form (`SIGTERM`, `15`, `SIGRTMIN+3`).
fn signal(s: &str) -> Result<String, String> {
    if let Ok(n) = s.parse::<u32>() {
        return if (1..=64).contains(&n) {
            Ok(n.to_string())
        } else {
            Err(format!("signal number {n} out of range 1-64"))
        };
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    let rt = |prefix: &str| -> bool {
        name.strip_prefix(prefix).is_some_and(|off| {
            off.is_empty()
                || off
                    .strip_prefix(['+', '-'])
                    .is_some_and(|n| n.parse::<u8>().is_ok_and(|n| n <= 30))
        })
    };
    if nix::sys::signal::Signal::from_str(&name).is_ok() || rt("SIGRTMIN") || rt("SIGRTMAX") {
        Ok(name)
    } else {
        Err(format!("unknown signal {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(changes: &[&str]) -> Result<Config, ImageError> {
        let mut c = Config::default();
        let v: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply(&mut c, &v)?;
        Ok(c)
    }

    #[test]
    fn cmd_and_entrypoint_forms() {
        let c = cfg(&[
            r#"CMD ["/bin/echo", "hi there"]"#,
            "entrypoint exec /app --x",
        ])
        .unwrap();
        assert_eq!(c.cmd().as_ref().unwrap(), &["/bin/echo", "hi there"]);
        assert_eq!(
            c.entrypoint().as_ref().unwrap(),
            &["/bin/sh", "-c", "exec /app --x"]
        );
        // Not valid JSON: shell form, like Docker.
        let c = cfg(&["CMD [oops"]).unwrap();
        assert_eq!(c.cmd().as_ref().unwrap(), &["/bin/sh", "-c", "[oops"]);
    }

    #[test]
    fn env_label_expose_and_friends() {
        let c = cfg(&[
            "ENV A=1 B=\"two words\" C='x y'",
            "ENV LEGACY some value",
            "ENV A=3",
            "LABEL org.opencontainers.image.title=busybox maintainer=\"me and you\"",
            "EXPOSE 80 53/udp 8000-8001/TCP",
            "EXPOSE 80/tcp",
            "WORKDIR /srv",
            "WORKDIR app/../data",
            "USER 1000:1000",
            "STOPSIGNAL term",
            "VOLUME [\"/data\"]",
            "VOLUME /cache /data",
        ])
        .unwrap();
        assert_eq!(
            c.env().as_ref().unwrap(),
            &["B=two words", "C=x y", "LEGACY=some value", "A=3"]
        );
        let labels = c.labels().as_ref().unwrap();
        assert_eq!(labels["org.opencontainers.image.title"], "busybox");
        assert_eq!(labels["maintainer"], "me and you");
        assert_eq!(
            c.exposed_ports().as_ref().unwrap(),
            &["80/tcp", "53/udp", "8000/tcp", "8001/tcp"]
        );
        assert_eq!(c.working_dir().as_deref(), Some("/srv/data"));
        assert_eq!(c.user().as_deref(), Some("1000:1000"));
        assert_eq!(c.stop_signal().as_deref(), Some("SIGTERM"));
        assert_eq!(c.volumes().as_ref().unwrap(), &["/data", "/cache"]);
    }

    #[test]
    fn signals() {
        assert_eq!(signal("SIGKILL").unwrap(), "SIGKILL");
        assert_eq!(signal("9").unwrap(), "9");
        assert_eq!(signal("sigrtmin+3").unwrap(), "SIGRTMIN+3");
        assert!(signal("SIGNOPE").is_err());
        assert!(signal("0").is_err());
        assert!(signal("65").is_err());
    }

    #[test]
    fn errors_name_the_change() {
        for (bad, needle) in [
            ("FROM scratch", "unknown instruction FROM"),
            ("RUN echo", "unknown instruction RUN"),
            ("CMD", "CMD needs an argument"),
            ("ENV =x", "not KEY=VALUE"),
            ("ENV A", "needs KEY=VALUE"),
            ("ENV A=\"x", "unterminated quote"),
            ("EXPOSE 70000", "not a port number"),
            ("EXPOSE 80/icmp", "protocol"),
            ("EXPOSE 90-80", "reversed"),
            ("USER a b", "exactly one argument"),
            ("STOPSIGNAL SIGFOO", "unknown signal"),
            ("VOLUME data", "not an absolute path"),
            ("  ", "empty instruction"),
        ] {
            let err = cfg(&[bad]).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, ImageError::InvalidChange { ref change, .. } if change == bad));
            assert!(msg.contains(needle), "{bad:?}: {msg}");
        }
    }
}
