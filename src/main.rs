//! gvpod: run OCI containers ("pods") in gVisor sandboxes with no daemon.

mod bundle;
mod cli;
mod image;
mod net;
mod pod;
mod runsc;
mod snapshot;
mod state;
mod sys;
mod util;

fn main() {
    std::process::exit(cli::main());
}
