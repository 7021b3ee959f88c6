//! `/images/json` and `/images/{name}/json`: the image store in docker's
//! shapes (one summary per image with all its tags, docker's short names);
//! `DELETE /images/{name}` and `POST /images/{name}/tag` (the pull, `POST
//! /images/create`, is in `pull`).

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::path::Path;

use serde_json::json;

use super::http::Request;
use super::{After, Reply};
use crate::pod::Ctx;

/// `docker.io/library/busybox:latest` → `busybox:latest`, as docker shows it.
pub(crate) fn short_ref(r: &str) -> String {
    let r = r.strip_prefix("docker.io/").unwrap_or(r);
    r.strip_prefix("library/").unwrap_or(r).to_string()
}

fn unix_time(rfc3339: &str) -> i64 {
    crate::util::parse_rfc3339(rfc3339).map_or(0, |t| t.timestamp())
}

pub fn list(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let res = Ctx::open(root).and_then(|ctx| Ok(ctx.images.list(&ctx.db)?));
    let list = match res {
        Ok(l) => l,
        Err(e) => return Reply::from_err(e.kind(), e).send(w, keep),
    };
    // One entry per image, its tags together (the store lists one per tag).
    let mut by_id: BTreeMap<String, (Vec<String>, Vec<String>, i64, u64)> = BTreeMap::new();
    for s in list {
        let e =
            by_id
                .entry(s.id.clone())
                .or_insert((vec![], vec![], unix_time(&s.created), s.size));
        if let Some(r) = &s.reference {
            e.0.push(short_ref(r));
        }
        if let Some(repo) = &s.repository {
            e.1.push(format!("{}@{}", short_ref(repo), s.digest));
        }
    }
    let out: Vec<_> = by_id
        .into_iter()
        .map(|(id, (tags, digests, created, size))| {
            json!({
                "Id": id, "ParentId": "", "RepoTags": tags, "RepoDigests": digests,
                "Created": created, "Size": size, "SharedSize": -1, "VirtualSize": size,
                "Labels": {}, "Containers": -1
            })
        })
        .collect();
    Reply::Json(200, json!(out)).send(w, keep)
}

pub fn inspect(
    root: &Path,
    name: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let res = Ctx::open(root).and_then(|ctx| Ok(ctx.images.inspect(&ctx.db, name)?));
    let i = match res {
        Ok(i) => i,
        Err(crate::pod::PodError::Image(crate::image::ImageError::NotFound(_))) => {
            return Reply::Error(404, format!("No such image: {name}")).send(w, keep)
        }
        Err(e) => return Reply::from_err(e.kind(), e).send(w, keep),
    };
    let config = i.config.get("config").cloned().unwrap_or(json!({}));
    Reply::Json(
        200,
        json!({
            "Id": i.id,
            "RepoTags": i.references.iter().map(|r| short_ref(r)).collect::<Vec<_>>(),
            "RepoDigests": i.repo_digests,
            "Created": i.created,
            "Size": i.size,
            "Architecture": i.architecture,
            "Os": i.os,
            "Config": config,
            "RootFS": {"Type": "layers", "Layers": i.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()}
        }),
    )
    .send(w, keep)
}

/// `DELETE /images/{name}?force=`: docker's `[{"Untagged": …}, {"Deleted": …}]`;
/// 409 while pods use it (unless `force`, which removes them), 404 unknown.
pub fn remove(
    root: &Path,
    name: &str,
    req: &Request,
    w: &mut UnixStream,
) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let res = Ctx::open(root)
        .and_then(|mut ctx| crate::pod::remove_image(&mut ctx, name, req.flag("force")));
    match res {
        Ok(lines) => {
            let out: Vec<_> = lines
                .iter()
                .filter_map(|l| {
                    let (k, v) = l.split_once(": ")?;
                    let v = if k == "Untagged" {
                        short_ref(v)
                    } else {
                        v.to_string()
                    };
                    Some(json!({ k: v }))
                })
                .collect();
            Reply::Json(200, json!(out))
        }
        Err(crate::pod::PodError::Image(crate::image::ImageError::NotFound(_))) => {
            Reply::Error(404, format!("No such image: {name}"))
        }
        Err(e) => Reply::from_err(e.kind(), e),
    }
    .send(w, keep)
}

/// `POST /images/{name}/tag?repo=&tag=`: 201.
pub fn tag(root: &Path, name: &str, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let Some(repo) = req.query("repo").filter(|r| !r.is_empty()) else {
        return Reply::Error(
            400,
            "repo is required: name the new tag's repository".into(),
        )
        .send(w, keep);
    };
    let target = super::pull::reference_of(repo, Some(req.query("tag").unwrap_or("latest")));
    let res = Ctx::open(root).and_then(|mut ctx| Ok(ctx.images.tag(&mut ctx.db, name, &target)?));
    match res {
        Ok(_) => Reply::Empty(201),
        Err(crate::pod::PodError::Image(crate::image::ImageError::NotFound(_))) => {
            Reply::Error(404, format!("No such image: {name}"))
        }
        Err(e) => Reply::from_err(e.kind(), e),
    }
    .send(w, keep)
}

#[cfg(test)]
mod tests {
    #[test]
    fn references_are_shown_the_docker_way() {
        assert_eq!(
            super::short_ref("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(super::short_ref("docker.io/me/app:1"), "me/app:1");
        assert_eq!(super::short_ref("127.0.0.1:5000/x:y"), "127.0.0.1:5000/x:y");
    }
}
