//! gvpod away from the host its pods run on: the remote client mode
//! ([`remote`], `gvpod --url`), on which the macOS machine verbs over
//! `limactl` will ride. Nothing here depends on Linux-only modules: the
//! same code is the whole of gvpod on a Mac.

pub mod remote;
