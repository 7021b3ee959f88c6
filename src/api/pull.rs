//! `POST /images/create?fromImage=&tag=`: a pull through the image store's
//! registry code with docker's JSON-lines progress (`Pulling from …`,
//! per-layer `Pulling fs layer`/`Already exists`/`Downloading`/`Download
//! complete`/`Pull complete`, `Digest: …`, then `Status: Downloaded newer
//! image for …` or `Image is up to date for …`).
//!
//! Invariant: the answer's head goes out with the first progress event,
//! after the registry resolved the manifest, so a bad reference (400) or an
//! unknown image (404) is a plain error answer; an error after that is
//! docker's `{"errorDetail":{"message":…},"error":…}` line in the 200 stream.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::http::{self, Chunked, Request};
use super::images::short_ref;
use super::{After, Reply};
use crate::image::registry::{ProgressSink, PullEvent};
use crate::image::Reference;
use crate::pod::{self, Ctx};

/// `fromImage` and `tag` as one reference (`tag` may be a digest).
pub(crate) fn reference_of(from: &str, tag: Option<&str>) -> String {
    match tag.filter(|t| !t.is_empty()) {
        None => from.to_string(),
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => {
            let last = from.rsplit('/').next().unwrap_or(from);
            if last.contains(':') || last.contains('@') {
                from.to_string()
            } else {
                format!("{from}:{t}")
            }
        }
    }
}

fn short(d: &str) -> String {
    let hex = d.strip_prefix("sha256:").unwrap_or(d);
    hex[..hex.len().min(12)].to_string()
}

fn status(text: &str, id: Option<&str>) -> Value {
    let mut v = json!({ "status": text });
    if let Some(id) = id {
        v["id"] = json!(id);
        v["progressDetail"] = json!({});
    }
    v
}

/// Docker's `[=====>    ] 1.2MB/3.4MB` progress text.
fn bar(current: u64, total: u64) -> String {
    let width = 50u64;
    let filled = (current.min(total) * width)
        .checked_div(total)
        .unwrap_or(width)
        .min(width);
    let mut b = "=".repeat(filled as usize);
    if filled < width {
        b.push('>');
        b.push_str(&" ".repeat((width - filled - 1) as usize));
    }
    let mb = |n: u64| format!("{:.1}MB", n as f64 / 1e6);
    format!("[{b}] {}/{}", mb(current), mb(total))
}

/// The stream as the sink and the handler share it.
struct Out {
    w: UnixStream,
    /// Whether the answer's head (and `Pulling from …`) went out.
    started: bool,
    pulling_from: Value,
    /// Layers downloaded, reported `Pull complete` before the digest.
    done: Vec<String>,
    /// The client went away: nothing more is written (the pull goes on).
    broken: bool,
}

impl Out {
    fn send(&mut self, v: &Value) {
        if self.broken {
            return;
        }
        let res = (|| {
            if !self.started {
                http::stream_head(&mut self.w, 200, "application/json")?;
                self.started = true;
                let first = self.pulling_from.clone();
                self.line(&first)?;
            }
            self.line(v)
        })();
        if res.is_err() {
            self.broken = true;
        }
    }

    fn line(&mut self, v: &Value) -> std::io::Result<()> {
        let mut l = serde_json::to_vec(v).expect("JSON serialises");
        l.extend_from_slice(b"\r\n");
        Chunked(&mut self.w).send(&l)
    }

    fn event(&mut self, e: PullEvent) {
        let v = match e {
            PullEvent::Exists { digest } => status("Already exists", Some(&short(&digest))),
            PullEvent::Start { digest, .. } => status("Pulling fs layer", Some(&short(&digest))),
            PullEvent::Bytes {
                digest,
                current,
                total,
            } => json!({
                "status": "Downloading", "id": short(&digest),
                "progressDetail": {"current": current, "total": total},
                "progress": bar(current, total)
            }),
            PullEvent::Done { digest } => {
                self.done.push(short(&digest));
                status("Download complete", Some(&short(&digest)))
            }
            PullEvent::Line(text) => {
                if text.starts_with("Digest:") {
                    for id in std::mem::take(&mut self.done) {
                        self.send(&status("Pull complete", Some(&id)));
                    }
                }
                status(&text, None)
            }
        };
        self.send(&v);
    }
}

pub fn create(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    if req.query("fromSrc").is_some_and(|s| !s.is_empty()) {
        return Reply::Error(
            400,
            "importing an image (fromSrc) is not supported: use `gvpod import`".into(),
        )
        .send(w, keep);
    }
    let Some(from) = req.query("fromImage").filter(|f| !f.is_empty()) else {
        return Reply::Error(400, "fromImage is required: name the image to pull".into())
            .send(w, keep);
    };
    let name = reference_of(from, req.query("tag"));
    let r = match Reference::parse(&name) {
        Ok(r) => r,
        Err(e) => return Reply::Error(400, format!("invalid reference format: {e}")).send(w, keep),
    };
    let mut ctx = match Ctx::open(root) {
        Ok(c) => c,
        Err(e) => return Reply::from_err(e.kind(), e).send(w, keep),
    };
    let tag_or_digest = r.digest.clone().or(r.tag.clone()).unwrap_or_default();
    let out = Arc::new(Mutex::new(Out {
        w: w.try_clone()?,
        started: false,
        pulling_from: status(
            &format!("Pulling from {}", r.repository),
            Some(&tag_or_digest),
        ),
        done: vec![],
        broken: false,
    }));
    let sink_out = out.clone();
    let sink = ProgressSink(Arc::new(move |e| {
        if let Ok(mut o) = sink_out.lock() {
            o.event(e);
        }
    }));
    let platform = req
        .query("platform")
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    let res = pod::pull_image(&mut ctx, &name, platform, sink);
    let mut o = match out.lock() {
        Ok(o) => o,
        Err(p) => p.into_inner(),
    };
    let shown = short_ref(&r.to_string());
    match res {
        Ok(newer) => {
            let s = if newer {
                format!("Status: Downloaded newer image for {shown}")
            } else {
                format!("Status: Image is up to date for {shown}")
            };
            o.send(&status(&s, None));
        }
        Err(e) if !o.started => {
            let status = match e.kind() {
                crate::error::Kind::NotFound => 404,
                k => super::status_of(k),
            };
            drop(o);
            return Reply::Error(status, e.to_string()).send(w, keep);
        }
        Err(e) => {
            let m = e.to_string();
            o.send(&json!({"errorDetail": {"message": m}, "error": m}));
        }
    }
    if o.broken {
        return Ok(After::Close);
    }
    Chunked(&mut o.w).finish()?;
    o.w.flush()?;
    Ok(After::Next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_image_and_tag_make_one_reference() {
        assert_eq!(reference_of("busybox", Some("latest")), "busybox:latest");
        assert_eq!(reference_of("busybox", None), "busybox");
        assert_eq!(
            reference_of("127.0.0.1:5000/busybox", Some("1")),
            "127.0.0.1:5000/busybox:1"
        );
        assert_eq!(reference_of("busybox:1", Some("latest")), "busybox:1");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(reference_of("busybox", Some(&d)), format!("busybox@{d}"));
    }

    #[test]
    fn progress_is_dockers() {
        assert_eq!(bar(0, 100).len(), bar(100, 100).len());
        assert!(bar(50, 100).starts_with(&format!("[{}>", "=".repeat(25))));
        assert!(bar(100, 100).starts_with(&format!("[{}]", "=".repeat(50))));
        let s = status("Already exists", Some("abc"));
        assert_eq!(s["id"], "abc");
        assert_eq!(s["progressDetail"], json!({}));
        assert!(status("Digest: x", None).get("id").is_none());
    }
}
