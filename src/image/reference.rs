//! Image references, normalised the way Docker and podman do it.
//!
//! `busybox` → `docker.io/library/busybox:latest`, `foo/bar:1` →
//! `docker.io/foo/bar:1`, `127.0.0.1:5000/ns/name:tag` keeps its registry,
//! `localhost/x` → `localhost/x:latest`, `name@sha256:<64 hex>` pins a digest.
//! The grammar follows distribution/reference: the first path component is a
//! registry when it contains `.` or `:`, is `localhost`, or has upper-case
//! letters; repository components are lower-case `[a-z0-9]` runs joined by
//! `.`, `_`, `__` or dashes; tags are `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.

use std::fmt;

use super::ImageError;

/// The registry used when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag used when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port, e.g. `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path below the registry, e.g. `library/busybox`.
    pub repository: String,
    /// Tag; `latest` when the input had neither tag nor digest.
    pub tag: Option<String>,
    /// `sha256:<64 hex>` digest, if pinned.
    pub digest: Option<String>,
}

fn invalid(value: &str, reason: impl Into<String>) -> ImageError {
    ImageError::InvalidReference {
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl Reference {
    /// Parses and normalises `s`.
    pub fn parse(s: &str) -> Result<Reference, ImageError> {
        if s.is_empty() {
            return Err(invalid(s, "empty reference"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(s, "contains whitespace or control characters"));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(parse_digest(s, d)?)),
            None => (s, None),
        };
        // A ':' after the last '/' introduces the tag; one before it is a registry port.
        let (name, tag) = match name_tag.rfind(':') {
            Some(i) if !name_tag[i..].contains('/') => {
                let tag = &name_tag[i + 1..];
                validate_tag(s, tag)?;
                (&name_tag[..i], Some(tag.to_string()))
            }
            _ => (name_tag, None),
        };
        if name.is_empty() {
            return Err(invalid(s, "missing repository name"));
        }
        let (registry, remainder) = split_registry(name);
        let registry = if registry == "index.docker.io" {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry.to_string()
        };
        validate_registry(s, &registry)?;
        let repository = if registry == DEFAULT_REGISTRY && !remainder.contains('/') {
            format!("library/{remainder}")
        } else {
            remainder.to_string()
        };
        validate_repository(s, &repository)?;
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(invalid(
                s,
                format!("repository name longer than {MAX_NAME_LEN} characters"),
            ));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (t, _) => t,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Parses `s` as the name to tag an image with: a tag (`latest` when
    /// none is given) and no digest, `no_digest` saying why a digest is
    /// refused here. Returns the normalised `registry/repository:tag`.
    pub fn parse_tag(s: &str, no_digest: &str) -> Result<String, ImageError> {
        let r = Reference::parse(s)?;
        match (&r.digest, r.tagged()) {
            (None, Some(tag)) => Ok(tag),
            _ => Err(invalid(s, no_digest)),
        }
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository:tag` (the key of the tag table), if there is a tag.
    pub fn tagged(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// Short display form: `docker.io/library/` and `docker.io/` are dropped
    /// (`busybox:latest`, `foo/bar:1`); other registries are kept.
    #[allow(dead_code)] // not shown anywhere yet: the CLI prints full references
    pub fn short(&self) -> String {
        let mut out = if self.registry == DEFAULT_REGISTRY {
            match self.repository.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        };
        if let Some(t) = &self.tag {
            out.push(':');
            out.push_str(t);
        }
        if let Some(d) = &self.digest {
            out.push('@');
            out.push_str(d);
        }
        out
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Splits off the registry the way distribution/reference's splitDockerDomain does.
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_REGISTRY, name),
    }
}

fn is_hex_lower(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn parse_digest(whole: &str, d: &str) -> Result<String, ImageError> {
    let Some(hex) = d.strip_prefix("sha256:") else {
        return Err(invalid(whole, "only sha256 digests are supported"));
    };
    if hex.len() != 64 || !is_hex_lower(hex) {
        return Err(invalid(
            whole,
            "digest must be sha256: followed by 64 lower-case hex digits",
        ));
    }
    Ok(d.to_string())
}

fn validate_tag(whole: &str, tag: &str) -> Result<(), ImageError> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            whole,
            format!("invalid tag {tag:?} (letters, digits, '_', '.', '-'; at most 128)"),
        ))
    }
}

fn validate_registry(whole: &str, reg: &str) -> Result<(), ImageError> {
    let (host, port) = if let Some(rest) = reg.strip_prefix('[') {
        // [ipv6]:port
        let Some((addr, after)) = rest.split_once(']') else {
            return Err(invalid(whole, format!("invalid registry {reg:?}")));
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(invalid(whole, format!("invalid registry {reg:?}")));
        }
        match after {
            "" => return Ok(()),
            a => match a.strip_prefix(':') {
                Some(p) => ("", Some(p)),
                None => return Err(invalid(whole, format!("invalid registry {reg:?}"))),
            },
        }
    } else {
        match reg.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (reg, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(whole, format!("invalid registry port in {reg:?}")));
        }
    }
    if !host.is_empty() || !reg.starts_with('[') {
        let ok = !host.is_empty()
            && host.split('.').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !c.starts_with('-')
                    && !c.ends_with('-')
            });
        if !ok {
            return Err(invalid(whole, format!("invalid registry {reg:?}")));
        }
    }
    Ok(())
}

/// One path component: `[a-z0-9]+` runs separated by `.`, `_`, `__` or one or more `-`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or "-+".
        let start = i;
        while i < b.len() && !is_alnum_lower(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn validate_repository(whole: &str, repo: &str) -> Result<(), ImageError> {
    if repo.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(invalid(whole, "repository name must be lower-case"));
    }
    for c in repo.split('/') {
        if !valid_component(c) {
            return Err(invalid(
                whole,
                format!("invalid repository component {c:?}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_hub_names_are_normalised() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("foo/bar:1"), "docker.io/foo/bar:1");
        assert_eq!(norm("foo/bar/baz"), "docker.io/foo/bar/baz:latest");
        assert_eq!(
            norm("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("library/busybox"), "docker.io/library/busybox:latest");
    }

    #[test]
    fn registries_are_kept() {
        assert_eq!(
            norm("127.0.0.1:5000/ns/name:tag"),
            "127.0.0.1:5000/ns/name:tag"
        );
        assert_eq!(norm("localhost/x"), "localhost/x:latest");
        assert_eq!(norm("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(norm("quay.io/podman/hello"), "quay.io/podman/hello:latest");
        assert_eq!(norm("[::1]:5000/x:2"), "[::1]:5000/x:2");
        let r = Reference::parse("127.0.0.1:5000/ns/name:tag").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "ns/name");
        assert_eq!(r.tag.as_deref(), Some("tag"));
        // A port-looking suffix without a registry part is a tag.
        let r = Reference::parse("myhost:5000").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/myhost:5000");
    }

    #[test]
    fn digests() {
        let r = Reference::parse(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        assert_eq!(r.short(), format!("busybox@{D}"));
        let r = Reference::parse(&format!("localhost:5000/a/b:v1@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.to_string(), format!("localhost:5000/a/b:v1@{D}"));
        assert_eq!(r.tagged().as_deref(), Some("localhost:5000/a/b:v1"));
    }

    #[test]
    fn short_forms() {
        assert_eq!(
            Reference::parse("busybox").unwrap().short(),
            "busybox:latest"
        );
        assert_eq!(Reference::parse("foo/bar:1").unwrap().short(), "foo/bar:1");
        assert_eq!(
            Reference::parse("localhost/x").unwrap().short(),
            "localhost/x:latest"
        );
        assert_eq!(
            Reference::parse("docker.io/library/a/b").unwrap().short(),
            "library/a/b:latest"
        );
    }

    #[test]
    fn bad_references_are_rejected_with_the_value() {
        for bad in [
            "",
            "Busybox",
            "foo/Bar",
            "busybox:",
            "busybox:-x",
            "busybox:a b",
            ":tag",
            "foo//bar",
            "foo/bar/",
            "/foo",
            "foo..bar",
            "foo___bar",
            "-foo",
            "foo-",
            "busybox@sha256:abc",
            "busybox@md5:0123",
            &format!("busybox@{}", D.to_uppercase().replace("SHA256", "sha256")),
            "exa mple.com/x",
            "example.com:port/x",
            "-bad.com/x",
            &format!("busybox:{}", "t".repeat(129)),
            &format!("{}a", "a/".repeat(200)),
        ] {
            let err = Reference::parse(bad).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, ImageError::InvalidReference { ref value, .. } if value == bad),
                "{bad:?}: {msg}"
            );
            assert!(msg.contains("expected"), "{msg}");
        }
        // Upper case in the first component makes it a registry (as Docker does).
        assert_eq!(norm("Example/x"), "Example/x:latest");
    }

    #[test]
    fn separators_in_components() {
        for ok in ["a.b", "a_b", "a__b", "a---b", "a1-2.3_4"] {
            assert!(valid_component(ok), "{ok}");
        }
        for bad in ["a..b", "a___b", "a-.b", ".a", "a_", "A"] {
            assert!(!valid_component(bad), "{bad}");
        }
    }
}
