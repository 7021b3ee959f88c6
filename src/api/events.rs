//! `GET /events`: docker's event stream. It stays open (the client's
//! hang-up is looked for ten times a second) until `until`, if given;
//! it is one more open connection, so the service's idle timer waits for
//! it. Container events (`create`, `start`, `die`, `destroy`) come from
//! [`pod::EventWatch`]; with `since`, the events rebuilt from the pods'
//! recorded times are sent first. Filters: `type`, `event`, `container`
//! (name or id prefix), `image`.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::http::{self, Chunked, Request};
use super::{After, Reply};
use crate::pod::{self, Ctx, PodEvent};

/// How often the state database is looked at (and the client's hang-up).
const POLL: Duration = Duration::from_millis(100);

/// A docker time parameter (`1700000000`, `1700000000.5`, or RFC 3339) in
/// nanoseconds since the epoch.
fn parse_time(s: &str) -> Option<i64> {
    if let Some(t) = crate::util::parse_rfc3339(s) {
        return t.timestamp_nanos_opt();
    }
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let frac = format!("{:0<9}", frac.get(..frac.len().min(9))?);
    let nanos: i64 = frac.parse().ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

fn shape(e: &PodEvent) -> Value {
    let mut attrs = json!({"image": e.image, "name": e.name});
    if let Some(c) = e.exit_code {
        attrs["exitCode"] = json!(c.to_string());
    }
    json!({
        "status": e.action, "id": e.id, "from": e.image,
        "Type": "container", "Action": e.action,
        "Actor": {"ID": e.id, "Attributes": attrs},
        "scope": "local",
        "time": e.time_nanos.div_euclid(1_000_000_000),
        "timeNano": e.time_nanos
    })
}

fn values(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Value::Object(o) => o.keys().cloned().collect(),
        Value::String(s) => vec![s.clone()],
        _ => vec![],
    }
}

fn passes(e: &PodEvent, filters: &Map<String, Value>) -> bool {
    filters.iter().all(|(k, v)| {
        let vals = values(v);
        vals.is_empty()
            || vals.iter().any(|want| match k.as_str() {
                "type" => want == "container",
                "event" => want == e.action,
                "container" => *want == e.name || e.id.starts_with(want.as_str()),
                "image" => *want == e.image,
                _ => true,
            })
    })
}

pub fn events(root: &Path, req: &Request, w: &mut UnixStream) -> std::io::Result<After> {
    let keep = req.keep_alive();
    let time = |k: &str| -> Result<Option<i64>, Reply> {
        match req.query(k).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => parse_time(s).map(Some).ok_or_else(|| {
                Reply::Error(
                    400,
                    format!("invalid {k} {s:?}: use unix seconds or RFC 3339"),
                )
            }),
        }
    };
    let (since, until) = match (time("since"), time("until")) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(r), _) | (_, Err(r)) => return r.send(w, keep),
    };
    let filters: Map<String, Value> = match req.query("filters") {
        None | Some("") => Map::new(),
        Some(f) => match serde_json::from_str(f) {
            Ok(m) => m,
            Err(e) => {
                return Reply::Error(400, format!("invalid filters {f:?}: {e}")).send(w, keep)
            }
        },
    };
    let ctx = match Ctx::open(root) {
        Ok(c) => c,
        Err(e) => return Reply::from_err(e.kind(), e).send(w, keep),
    };
    let mut watch = match pod::EventWatch::new(&ctx) {
        Ok(x) => x,
        Err(e) => return Reply::from_err(e.kind(), e).send(w, keep),
    };
    http::stream_head(w, 200, "application/json")?;
    let probe = w.try_clone()?;
    let mut c = Chunked(w);
    let in_range = |e: &PodEvent| until.is_none_or(|u| e.time_nanos <= u);
    let send = |c: &mut Chunked<UnixStream>, evs: Vec<PodEvent>| -> std::io::Result<()> {
        for e in evs.iter().filter(|e| passes(e, &filters) && in_range(e)) {
            let mut line = serde_json::to_vec(&shape(e)).expect("JSON serialises");
            line.push(b'\n');
            c.send(&line)?;
        }
        Ok(())
    };
    if let Some(s) = since {
        match pod::past_events(&ctx, s) {
            Ok(evs) => send(&mut c, evs)?,
            Err(e) => tracing::warn!("past events: {e}"),
        }
    }
    let now = || chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    loop {
        if until.is_some_and(|u| now() >= u) {
            break;
        }
        if http::hung_up(&probe) {
            return Ok(After::Close);
        }
        let left = until.map_or(POLL, |u| {
            Duration::from_nanos(u.saturating_sub(now()).max(0) as u64).min(POLL)
        });
        std::thread::sleep(left);
        match watch.poll(&ctx) {
            Ok(evs) => send(&mut c, evs)?,
            Err(e) => tracing::warn!("events: {e}"),
        }
    }
    c.finish()?;
    Ok(After::Next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_unix_seconds_or_rfc3339() {
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000_000_000_000));
        assert_eq!(parse_time("1700000000.5"), Some(1_700_000_000_500_000_000));
        assert_eq!(
            parse_time("1700000000.000000001"),
            Some(1_700_000_000_000_000_001)
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(parse_time("soon"), None);
    }

    #[test]
    fn events_are_dockers_and_filtered() {
        let e = PodEvent {
            action: "die",
            id: "abcdef".into(),
            name: "web".into(),
            image: "busybox".into(),
            exit_code: Some(3),
            time_nanos: 1_700_000_000_123_456_789,
        };
        let v = shape(&e);
        assert_eq!(v["Action"], "die");
        assert_eq!(v["Actor"]["Attributes"]["exitCode"], "3");
        assert_eq!(v["time"], 1_700_000_000);
        let f = |s: &str| serde_json::from_str::<Map<String, Value>>(s).unwrap();
        assert!(passes(&e, &f(r#"{"type":["container"],"event":["die"]}"#)));
        assert!(passes(&e, &f(r#"{"container":{"abc":true}}"#)));
        assert!(!passes(&e, &f(r#"{"type":["image"]}"#)));
        assert!(!passes(&e, &f(r#"{"event":["start"]}"#)));
    }
}
