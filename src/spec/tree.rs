//! The spanned value tree every spec file is read into, and compose-style
//! merging of such trees.
//!
//! Invariants: every [`Node`] and every mapping key carries the [`Loc`]
//! (file, 1-based line, 1-based column) it was written at, and merging
//! never invents locations: a merged value keeps the location of the file
//! it won from, so an error found after `-f A -f B` names the right file.
//! Only this file knows the YAML crate (saphyr).

use std::sync::Arc;

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};

use super::SpecError;

/// Where a key or value was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: Arc<str>,
    pub line: usize,
    pub col: usize,
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A YAML value with its location.
#[derive(Debug, Clone)]
pub struct Node {
    pub val: Val,
    pub at: Loc,
}

#[derive(Debug, Clone)]
pub enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// In file order; keys are unique (a repeated key is an error).
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its location.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub at: Loc,
}

impl Val {
    /// What the value is, for "expected …, found …" messages.
    pub fn what(&self) -> &'static str {
        match self {
            Val::Null => "nothing (null)",
            Val::Bool(_) => "a boolean",
            Val::Int(_) => "a number",
            Val::Float(_) => "a number",
            Val::Str(_) => "a string",
            Val::Seq(_) => "a list",
            Val::Map(_) => "a mapping",
        }
    }
}

/// Parses one spec file's text. An empty file is an empty mapping.
pub fn parse(file: &str, text: &str) -> Result<Node, SpecError> {
    let file: Arc<str> = Arc::from(file);
    let docs = MarkedYamlOwned::load_from_str(text).map_err(|e| {
        let m = e.marker();
        SpecError::at(
            &Loc {
                file: file.clone(),
                line: m.line(),
                col: m.col() + 1,
            },
            format!(
                "invalid YAML: {}; expected {}",
                e.info(),
                if e.info().contains("duplicated key") {
                    "each key once"
                } else {
                    "a YAML mapping"
                }
            ),
        )
    })?;
    let start = Loc {
        file: file.clone(),
        line: 1,
        col: 1,
    };
    let mut docs = docs.into_iter();
    let Some(doc) = docs.next() else {
        return Ok(Node {
            val: Val::Map(Vec::new()),
            at: start,
        });
    };
    if let Some(second) = docs.next() {
        let at = loc(&file, &second);
        return Err(SpecError::at(
            &at,
            "a second YAML document; expected one document per spec file".into(),
        ));
    }
    let node = convert(&file, doc)?;
    match node.val {
        Val::Null => Ok(Node {
            val: Val::Map(Vec::new()),
            at: start,
        }),
        _ => Ok(node),
    }
}

fn loc(file: &Arc<str>, n: &MarkedYamlOwned) -> Loc {
    Loc {
        file: file.clone(),
        line: n.span.start.line(),
        col: n.span.start.col() + 1,
    }
}

fn convert(file: &Arc<str>, n: MarkedYamlOwned) -> Result<Node, SpecError> {
    let at = loc(file, &n);
    let val = match n.data {
        YamlDataOwned::Value(s) => match s {
            ScalarOwned::Null => Val::Null,
            ScalarOwned::Boolean(b) => Val::Bool(b),
            ScalarOwned::Integer(i) => Val::Int(i),
            ScalarOwned::FloatingPoint(f) => Val::Float(f.into_inner()),
            ScalarOwned::String(s) => Val::Str(s),
        },
        YamlDataOwned::Representation(s, _, _) => Val::Str(s),
        YamlDataOwned::Sequence(items) => Val::Seq(
            items
                .into_iter()
                .map(|i| convert(file, i))
                .collect::<Result<_, _>>()?,
        ),
        YamlDataOwned::Mapping(m) => {
            let mut out: Vec<(Key, Node)> = Vec::with_capacity(m.len());
            for (k, v) in m {
                let kat = loc(file, &k);
                let name = match convert(file, k)?.val {
                    Val::Str(s) => s,
                    Val::Int(i) => i.to_string(),
                    Val::Bool(b) => b.to_string(),
                    other => {
                        return Err(SpecError::at(
                            &kat,
                            format!("a key that is {}; expected a name", other.what()),
                        ))
                    }
                };
                out.push((Key { name, at: kat }, convert(file, v)?));
            }
            Val::Map(out)
        }
        YamlDataOwned::Tagged(_, inner) => return convert(file, *inner),
        YamlDataOwned::Alias(_) => {
            return Err(SpecError::at(
                &at,
                "an alias (*name); expected the value written out (anchors and aliases are not supported)"
                    .into(),
            ))
        }
        YamlDataOwned::BadValue => {
            return Err(SpecError::at(&at, "a value YAML cannot read; expected a scalar, list or mapping".into()))
        }
    };
    Ok(Node { val, at })
}

/// Merges `over` onto `base` as docker compose merges files: mappings merge
/// key by key (recursively), anything else in `over` replaces what `base`
/// had, lists included (compose appends some lists, such as `ports`; gvpod
/// replaces every list so that an override file can also remove entries).
pub fn merge(base: Node, over: Node) -> Node {
    match (base.val, over.val) {
        (Val::Map(mut b), Val::Map(o)) => {
            for (k, v) in o {
                match b.iter().position(|(bk, _)| bk.name == k.name) {
                    Some(i) => {
                        let old = std::mem::replace(
                            &mut b[i].1,
                            Node {
                                val: Val::Null,
                                at: v.at.clone(),
                            },
                        );
                        b[i].1 = merge(old, v);
                    }
                    None => b.push((k, v)),
                }
            }
            Node {
                val: Val::Map(b),
                at: base.at,
            }
        }
        (_, o) => Node {
            val: o,
            at: over.at,
        },
    }
}
