//! Layers on top of parents, without the overlay mount.
//!
//! The store applies a layer to an overlay mount of its parents (see
//! `unpack::overlay`); the unpacker sees the merged view and decides where
//! each entry lands, what a whiteout deletes and what an opaque marker
//! keeps. Here every layer is unpacked into one plain directory, which then
//! holds that merged view, so those decisions are tested as any user. What
//! the kernel makes of them in the layer's own dir (whiteout devices, opaque
//! xattrs, copied-up parents) needs root: `tests/images/unpacked.rs`
//! (`layer_dirs_are_overlay_upper_dirs`) loads these same stacks.

use super::*;

/// Layers applied one after another to one merged tree.
struct Stack {
    sb: Sandbox,
    n: usize,
}

impl Stack {
    fn new() -> Stack {
        Stack {
            sb: sandbox(),
            n: 0,
        }
    }

    /// Applies the next layer, named `test-layer-L<n>`.
    fn push(&mut self, tar: &[u8]) -> Result<UnpackStats, ImageError> {
        let name = format!("test-layer-L{}", self.n);
        self.n += 1;
        unpack_layer(tar, &self.sb.root, &name)
    }

    /// The merged tree as sorted `path kind detail` lines.
    fn merged(&self) -> Vec<String> {
        self.sb.tree()
    }
}

#[test]
fn entries_below_a_lower_symlink_land_where_it_points() {
    let mut st = Stack::new();
    let mut t = TarBuilder::new();
    t.dir("var/", 0o755)
        .dir("run/", 0o755)
        .dir("run/lock/", 0o755)
        .symlink("var/run", "/run")
        .symlink("var/lock", "../run/lock");
    st.push(&t.finish()).unwrap();
    let mut t = TarBuilder::new();
    t.file("var/run/x", 0o644, b"x")
        .file("var/lock/y", 0o644, b"y");
    st.push(&t.finish()).unwrap();
    assert_eq!(
        st.merged(),
        lines(&[
            "run dir",
            "run/x file x",
            "run/lock dir",
            "run/lock/y file y",
            "var dir",
            "var/run -> /run",
            "var/lock -> ../run/lock",
        ])
    );
    // A directory entry over a symlink replaces the symlink (as containerd
    // and GNU tar do); what follows goes into the new directory.
    let mut t = TarBuilder::new();
    t.dir("var/run/", 0o755).file("var/run/z", 0o644, b"z");
    st.push(&t.finish()).unwrap();
    let m = st.merged();
    assert!(m.contains(&"var/run dir".to_string()), "{m:?}");
    assert!(m.contains(&"var/run/z file z".to_string()), "{m:?}");
    assert!(!m.iter().any(|l| l.starts_with("var/run/x")), "{m:?}");
    st.sb.assert_victim_intact("stack");
}

#[test]
fn whiteouts_and_opaque_dirs_give_the_merged_tree() {
    let mut st = Stack::new();
    let mut t = TarBuilder::new();
    t.dir("a/", 0o755)
        .file("a/keep", 0o644, b"k")
        .file("a/gone", 0o644, b"g")
        .dir("d/", 0o755)
        .file("d/old", 0o644, b"o")
        .dir("d/sub/", 0o755)
        .file("d/sub/old2", 0o644, b"o2")
        .file("f", 0o644, b"f")
        .dir("r/", 0o755)
        .file("r/old", 0o644, b"o")
        .dir("late/", 0o755)
        .file("late/old", 0o644, b"o")
        .dir("late/sub/", 0o755)
        .file("late/sub/old", 0o644, b"o")
        .symlink("lnk", "a");
    st.push(&t.finish()).unwrap();
    let mut t = TarBuilder::new();
    t.file("a/.wh.gone", 0o644, b"")
        .dir("d/", 0o755)
        .file("d/.wh..wh..opq", 0o644, b"")
        .file("d/new", 0o644, b"n")
        .file(".wh.f", 0o644, b"")
        // Whiteout, then the same name re-created: only the new content.
        .file(".wh.r", 0o644, b"")
        .dir("r/", 0o755)
        .file("r/fresh", 0o644, b"r")
        // Entries first, opaque marker after: this layer's entries stay.
        .dir("late/", 0o755)
        .file("late/mine", 0o644, b"m")
        .file("late/sub/mine", 0o644, b"m")
        .file("late/.wh..wh..opq", 0o644, b"")
        // A whiteout of a symlink removes the link, not its target.
        .file(".wh.lnk", 0o644, b"")
        // A hardlink to a lower file.
        .hardlink("hl", "a/keep")
        .file(".wh.never-existed", 0o644, b"")
        .file("nodir/.wh.x", 0o644, b"");
    st.push(&t.finish()).unwrap();
    assert_eq!(
        st.merged(),
        lines(&[
            "a dir",
            "a/keep file k",
            "d dir",
            "d/new file n",
            "hl file k",
            "late dir",
            "late/mine file m",
            "late/sub dir",
            "late/sub/mine file m",
            "r dir",
            "r/fresh file r",
        ])
    );
    // A third layer sees the second's deletions and re-creates something.
    let mut t = TarBuilder::new();
    t.file("f", 0o644, b"back").file("d/sub/again", 0o644, b"a");
    st.push(&t.finish()).unwrap();
    let m = st.merged();
    assert!(m.contains(&"f file back".to_string()), "{m:?}");
    assert!(m.contains(&"d/sub/again file a".to_string()), "{m:?}");
    assert!(!m.iter().any(|l| l.starts_with("d/sub/old2")), "{m:?}");
    st.sb.assert_victim_intact("stack");
}

/// What the overlay mount is given (the mount itself needs root:
/// tests/images/unpacked.rs): the parents top first, every path relative to the
/// layer cache and escaped.
#[test]
fn overlay_options_list_the_parents_top_first_relative_and_escaped() {
    let base = Path::new("/var/lib/gvpod/images/layers");
    let parents = [
        base.join("aaa"),
        base.join(".tmp-1/upper"),
        base.join(r"we:ird,na\me"),
    ];
    let opts = overlay::overlay_options(
        &parents,
        &base.join(".tmp-2/upper"),
        &base.join(".tmp-2/work"),
        base,
    );
    assert_eq!(
        opts,
        r"lowerdir=we\:ird\,na\\me:.tmp-1/upper:aaa,upperdir=.tmp-2/upper,workdir=.tmp-2/work,redirect_dir=off,index=off,metacopy=off"
    );
}
