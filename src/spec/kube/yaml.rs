//! The small YAML emitter `generate kube` writes with: ordered mappings
//! (Kubernetes readers expect `apiVersion`, `kind`, `metadata` first) and
//! comments before an entry, which neither serde_json's map nor saphyr's
//! emitter keeps. Block style; every string double-quoted with JSON's
//! escapes (valid YAML, so a value such as `on`, `1e3` or `- x` is never
//! read as something else); keys plain when they are plain words.

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Y {
    Str(String),
    Int(i64),
    Bool(bool),
    Map(Vec<Entry>),
    Seq(Vec<Y>),
}

/// One `key: value` of a mapping, with comment lines written before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub val: Y,
    pub comments: Vec<String>,
}

/// Builds a mapping from `(key, value)` pairs, in order.
pub fn map<const N: usize>(entries: [(&str, Y); N]) -> Y {
    Y::Map(
        entries
            .into_iter()
            .map(|(k, v)| Entry {
                key: k.to_string(),
                val: v,
                comments: vec![],
            })
            .collect(),
    )
}

pub fn s(v: impl Into<String>) -> Y {
    Y::Str(v.into())
}

impl Y {
    /// Adds `key: val` at the end of a mapping (with comment lines).
    pub fn push(&mut self, key: &str, val: Y, comments: Vec<String>) {
        if let Y::Map(m) = self {
            m.push(Entry {
                key: key.to_string(),
                val,
                comments,
            });
        }
    }
}

fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
        && k.as_bytes()[0].is_ascii_alphabetic();
    if plain {
        k.to_string()
    } else {
        serde_json::to_string(k).unwrap_or_default()
    }
}

fn scalar(v: &Y) -> String {
    match v {
        Y::Str(s) => serde_json::to_string(s).unwrap_or_default(),
        Y::Int(i) => i.to_string(),
        Y::Bool(b) => b.to_string(),
        Y::Map(_) => "{}".into(),
        Y::Seq(_) => "[]".into(),
    }
}

fn comment(pad: &str, c: &str, out: &mut String) {
    for l in c.lines() {
        out.push_str(pad);
        out.push_str("# ");
        out.push_str(l);
        out.push('\n');
    }
}

/// Writes `v` as a document's body.
pub fn emit(v: &Y) -> String {
    let mut out = String::new();
    block(v, 0, &mut out);
    out
}

fn block(v: &Y, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Y::Map(m) if !m.is_empty() => {
            for e in m {
                for c in &e.comments {
                    comment(&pad, c, out);
                }
                out.push_str(&pad);
                out.push_str(&key(&e.key));
                out.push(':');
                child(&e.val, indent, out);
            }
        }
        Y::Seq(items) if !items.is_empty() => {
            for x in items {
                out.push_str(&pad);
                out.push('-');
                match x {
                    // `- key: v` with the rest of the mapping under it.
                    Y::Map(m) if !m.is_empty() && m[0].comments.is_empty() => {
                        let mut inner = String::new();
                        block(x, indent + 2, &mut inner);
                        out.push(' ');
                        out.push_str(&inner[indent + 2..]);
                    }
                    _ => child(x, indent, out),
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn child(x: &Y, indent: usize, out: &mut String) {
    match x {
        Y::Map(m) if !m.is_empty() => {
            out.push('\n');
            block(x, indent + 2, out);
        }
        Y::Seq(a) if !a.is_empty() => {
            out.push('\n');
            block(x, indent + 2, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_comments_and_quoting_are_kept() {
        let mut m = map([("kind", s("Pod")), ("apiVersion", s("v1"))]);
        m.push(
            "items",
            Y::Seq(vec![
                map([("name", s("a")), ("port", Y::Int(80))]),
                s("on"),
                Y::Seq(vec![]),
            ]),
            vec!["two lines\nof comment".into()],
        );
        m.push("empty", map([]), vec![]);
        m.push("app.kubernetes.io/name", Y::Bool(true), vec![]);
        assert_eq!(
            emit(&m),
            "kind: \"Pod\"\napiVersion: \"v1\"\n# two lines\n# of comment\nitems:\n  - name: \"a\"\n    port: 80\n  - \"on\"\n  - []\nempty: {}\napp.kubernetes.io/name: true\n"
        );
    }

    #[test]
    fn what_it_writes_reads_back() {
        let m = map([(
            "spec",
            map([(
                "containers",
                Y::Seq(vec![map([
                    ("name", s("web")),
                    (
                        "args",
                        Y::Seq(vec![s("-c"), s("echo \"hi\": # not a comment")]),
                    ),
                ])]),
            )]),
        )]);
        let text = emit(&m);
        use saphyr::LoadableYamlNode;
        let docs = saphyr::YamlOwned::load_from_str(&text).unwrap();
        let args = &docs[0]["spec"]["containers"][0]["args"];
        assert_eq!(args[1].as_str(), Some("echo \"hi\": # not a comment"));
    }
}
