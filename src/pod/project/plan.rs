//! What `up` does to each pod of a project, decided from the spec and the
//! pods that exist, with no I/O (unit-tested):
//! * a pod that does not exist is created and started;
//! * one whose spec hash label differs (its spec changed) is removed and
//!   made again; one whose hash is the same is started if it is not
//!   running, else left alone: a second `up` changes nothing;
//! * pods start by dependency level: a pod whose services depend on
//!   another pod comes in a later level than that pod; pods of one level
//!   are made in parallel. (`spec` has refused cycles.)

use std::collections::{BTreeMap, BTreeSet};

use crate::spec::Project;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Same spec, running: nothing to do.
    Keep,
    /// Same spec, not running.
    Start,
    Create,
    /// The spec changed: remove, then create.
    Recreate,
}

/// A project pod that exists, as the plan sees it.
#[derive(Debug, Clone)]
pub struct Existing {
    pub hash: Option<String>,
    pub running: bool,
}

pub fn step(want_hash: &str, existing: Option<&Existing>) -> Step {
    match existing {
        None => Step::Create,
        Some(e) if e.hash.as_deref() != Some(want_hash) => Step::Recreate,
        Some(e) if e.running => Step::Keep,
        Some(_) => Step::Start,
    }
}

/// The pods (keys) another pod depends on through its services.
pub fn pod_deps(project: &Project, key: &str) -> BTreeSet<String> {
    let pod = &project.pods[key];
    pod.services
        .values()
        .flat_map(|s| s.depends_on.iter())
        .filter(|d| !pod.services.contains_key(*d) && project.pods.contains_key(*d))
        .cloned()
        .collect()
}

/// The pods of `keys` in dependency levels (each level depends only on
/// earlier ones). A dependency outside `keys` is taken as already there.
pub fn levels(project: &Project, keys: &[String]) -> Vec<Vec<String>> {
    let wanted: BTreeSet<&String> = keys.iter().collect();
    let mut level: BTreeMap<String, usize> = BTreeMap::new();
    fn depth(
        project: &Project,
        key: &str,
        wanted: &BTreeSet<&String>,
        memo: &mut BTreeMap<String, usize>,
        guard: usize,
    ) -> usize {
        if let Some(d) = memo.get(key) {
            return *d;
        }
        let d = if guard > project.pods.len() {
            0
        } else {
            pod_deps(project, key)
                .iter()
                .filter(|d| wanted.contains(d))
                .map(|d| depth(project, d, wanted, memo, guard + 1) + 1)
                .max()
                .unwrap_or(0)
        };
        memo.insert(key.to_string(), d);
        d
    }
    for k in keys {
        depth(project, k, &wanted, &mut level, 0);
    }
    let max = level.values().copied().max().unwrap_or(0);
    (0..=max)
        .map(|l| {
            keys.iter()
                .filter(|k| level.get(*k) == Some(&l))
                .cloned()
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(text: &str) -> Project {
        crate::spec::load(&[crate::spec::Source {
            name: "a.yaml".into(),
            text: text.into(),
            dir: "/".into(),
        }])
        .unwrap()
    }

    #[test]
    fn a_second_up_keeps_and_a_changed_spec_recreates() {
        let running = Existing {
            hash: Some("h1".into()),
            running: true,
        };
        assert_eq!(step("h1", None), Step::Create);
        assert_eq!(step("h1", Some(&running)), Step::Keep);
        assert_eq!(step("h2", Some(&running)), Step::Recreate);
        let stopped = Existing {
            running: false,
            ..running
        };
        assert_eq!(step("h1", Some(&stopped)), Step::Start);
        let unlabeled = Existing {
            hash: None,
            running: true,
        };
        assert_eq!(step("h1", Some(&unlabeled)), Step::Recreate);
    }

    #[test]
    fn pods_come_in_dependency_levels_and_a_pods_own_services_do_not_count() {
        let p = project(
            "name: x\npods:\n  db: {image: b, services: {db: {start: d}, init: {start: i, depends_on: [db]}}}\n  api: {image: b, services: {a: {start: a, depends_on: [db]}}}\n  web: {image: b, services: {w: {start: w, depends_on: [api, db]}}}\n  lone: {image: b}\n",
        );
        let all: Vec<String> = p.pods.keys().cloned().collect();
        assert_eq!(
            levels(&p, &all),
            vec![
                vec!["db".to_string(), "lone".into()],
                vec!["api".into()],
                vec!["web".into()]
            ]
        );
        // `up web` alone: what it depends on is taken as there.
        assert_eq!(
            levels(&p, &["web".to_string()]),
            vec![vec!["web".to_string()]]
        );
        assert!(
            pod_deps(&p, "db").is_empty(),
            "db's init depends on its own service db"
        );
    }
}
