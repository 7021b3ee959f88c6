//! Writes a serialized project as YAML (block style; every string in
//! double quotes, JSON's escapes being valid YAML), so `gvpod config`
//! output can be read back as a spec file's values are.

use serde_json::Value;

pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    block(v, 0, &mut out);
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !k.starts_with(['-', '.']);
    if plain {
        k.to_string()
    } else {
        serde_json::to_string(k).unwrap_or_default()
    }
}

fn is_empty_collection(v: &Value) -> Option<&'static str> {
    match v {
        Value::Object(m) if m.is_empty() => Some("{}"),
        Value::Array(a) if a.is_empty() => Some("[]"),
        _ => None,
    }
}

/// Writes `v`, whose lines start at `indent`, after a `key:` or `- `
/// already on the current line (or at the top).
fn block(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                out.push_str(&pad);
                out.push_str(&key(k));
                out.push(':');
                child(x, indent, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for x in a {
                out.push_str(&pad);
                out.push('-');
                child(x, indent, out);
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(
                is_empty_collection(other)
                    .map_or(scalar(other), str::to_string)
                    .as_str(),
            );
            out.push('\n');
        }
    }
}

fn child(x: &Value, indent: usize, out: &mut String) {
    match x {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            block(x, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            block(x, indent + 2, out);
        }
        other => {
            out.push(' ');
            out.push_str(
                is_empty_collection(other)
                    .map_or(scalar(other), str::to_string)
                    .as_str(),
            );
            out.push('\n');
        }
    }
}
