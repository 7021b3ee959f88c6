//! Checks across a decoded project: names (a pod's `<project>-<pod>` must
//! be a gvpod pod name and a DNS label, since routes put it in host names),
//! networks named by pods, and services' `depends_on` (targets are services
//! of the same pod or other pods of the project; no cycle, and a cycle is
//! named in full).

use std::collections::BTreeMap;

use super::tree::Loc;
use super::SpecError;

/// A DNS label of lowercase letters, digits and '-', not starting or
/// ending with '-', at most `max` characters.
pub fn is_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn name(kind: &str, s: &str, at: &Loc, max: usize) -> Result<(), SpecError> {
    if is_label(s, max) {
        Ok(())
    } else {
        Err(SpecError::at(
            at,
            format!(
                "invalid {kind} name {s:?}; expected lowercase letters, digits and '-' (not first or last), at most {max} characters"
            ),
        ))
    }
}

/// Finds a cycle in a dependency graph (node -> the nodes it waits for):
/// the nodes on it, the first repeated at the end (`a -> b -> a`).
pub fn cycle(graph: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    // 0 unvisited, 1 on the current path, 2 done.
    let mut state: BTreeMap<&str, u8> = graph.keys().map(|k| (k.as_str(), 0)).collect();
    fn visit<'a>(
        n: &'a str,
        graph: &'a BTreeMap<String, Vec<String>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) | None => return None,
            Some(1) => {
                let from = path.iter().position(|p| *p == n).unwrap_or(0);
                let mut c: Vec<String> = path[from..].iter().map(|s| s.to_string()).collect();
                c.push(n.to_string());
                return Some(c);
            }
            _ => {}
        }
        state.insert(n, 1);
        path.push(n);
        for d in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, graph, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n, 2);
        None
    }
    for k in graph.keys() {
        if let Some(c) = visit(k, graph, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}
