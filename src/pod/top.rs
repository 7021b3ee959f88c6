//! `top`: the processes inside a running pod (`runsc ps`), for `gvpod top`
//! and the API's `/containers/{id}/top`. PIDs are the sandbox's own (the
//! pod's first process is 1), as `runsc ps` gives them; a pod that is not
//! running is a conflict, as docker answers ("is not running").

pub use super::views::Top;

use super::{Ctx, PodError, Result};

/// The processes inside pod `key` (a name or an id prefix).
pub fn top(ctx: &mut Ctx, key: &str) -> Result<Top> {
    let pod = ctx.lookup(key)?;
    let pod = ctx.refresh(pod)?;
    if pod.status != crate::state::PodStatus::Running {
        return Err(PodError::BadState {
            name: pod.name.clone(),
            status: pod.status.as_str(),
            hint: "start it first (`gvpod start`)",
        });
    }
    let flags = ctx.flags_of(&pod)?;
    let runsc = ctx.runsc_for(&flags)?;
    let processes = runsc.ps(&flags, &pod.id)?;
    Ok(Top {
        id: pod.id,
        name: pod.name,
        processes,
    })
}
