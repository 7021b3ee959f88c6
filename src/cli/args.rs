//! clap argument structs, and the one place their pod options become
//! [`PodOptions`] (`run`, `create`; `restore` shares `-p`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::bundle::{self, PodOptions};
use crate::pod::PodError;

/// The data root when neither --root nor GVPOD_ROOT names one.
pub const DEFAULT_ROOT: &str = "/var/lib/gvpod";

#[derive(Parser)]
#[command(
    name = "gvpod",
    version,
    about = "Run OCI containers (pods) in gVisor sandboxes, with no daemon"
)]
pub struct Cli {
    /// Data root (state database, images, bundles, logs).
    #[arg(
        long,
        global = true,
        env = "GVPOD_ROOT",
        default_value = DEFAULT_ROOT
    )]
    pub root: PathBuf,
    /// Keep runsc's full debug log under each new pod's bundle.
    #[arg(long, global = true)]
    pub debug: bool,
    /// gvpod's own log level (error, warn, info, debug, trace).
    #[arg(long, global = true, env = "GVPOD_LOG", default_value = "warn")]
    pub log_level: String,
    /// Run the command through a gvpod service (`gvpod system service`)
    /// instead of on this host's data root: unix:///PATH.
    #[arg(long, global = true, env = "GVPOD_HOST")]
    pub url: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Options shared by `run` and `create`.
#[derive(Args)]
pub struct PodArgs {
    /// Pod name (default: generated).
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to copy gvpod's own).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines).
    #[arg(long)]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the pod.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// User (name or uid, optionally :group) inside the pod.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Pod hostname (default: the first 12 characters of its id).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Bind a host directory: HOSTDIR:PODDIR[:ro].
    #[arg(short = 'v', long)]
    pub volume: Vec<String>,
    /// Memory limit (e.g. 256m, 1g).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// CPU limit in cores (e.g. 1.5).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Maximum number of host tasks of the sandbox (gVisor's own threads count; at least 64).
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// Bound the pod's writable layer: size=SIZE (e.g. size=10g; its own
    /// filesystem, so a full layer fails the pod's writes, not the host's).
    #[arg(long, value_name = "size=SIZE")]
    pub storage_opt: Option<String>,
    /// Rotate the pod's log once it passes this size (docker's json-file
    /// max-size; default 10m; 0 keeps it unbounded).
    #[arg(long, value_name = "SIZE")]
    pub log_max_size: Option<String>,
    /// How many log files to keep, the current one included (default 3).
    #[arg(long, value_name = "N")]
    pub log_max_file: Option<u32>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Network: the name of a gvpod network (default: gvpod, created on first
    /// use), none (loopback only) or host (the host's network stack).
    #[arg(long, default_value = "gvpod")]
    pub network: String,
    #[command(flatten)]
    pub ports: PublishArgs,
    /// Fixed IPv4 address on the pod's network.
    #[arg(long)]
    pub ip: Option<String>,
    /// DNS server for the pod's /etc/resolv.conf (default: the host's upstream servers).
    #[arg(long)]
    pub dns: Vec<String>,
    /// Add NAME:IP to the pod's /etc/hosts.
    #[arg(long)]
    pub add_host: Vec<String>,
    /// gVisor platform (ptrace, systrap, kvm); default: runsc's own.
    #[arg(long)]
    pub platform: Option<String>,
    /// Extra runsc global flag NAME=VALUE (repeatable).
    #[arg(long)]
    pub runsc_flag: Vec<String>,
    /// Override the image's entrypoint.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Restart policy: no, always, on-failure[:N] or unless-stopped (the
    /// pod's monitor restarts it; `gvpod system boot` after a reboot).
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Set a label KEY=VALUE (or KEY) on the pod (repeatable).
    #[arg(short = 'l', long)]
    pub label: Vec<String>,
    /// Record a port the pod serves, PORT[/tcp|/udp] (repeatable; docker's EXPOSE).
    #[arg(long)]
    pub expose: Vec<String>,
    /// The port a request to the route port reaches when its host names
    /// none (default: the image's first exposed port, else 80).
    #[arg(long, value_name = "PORT")]
    pub route_default: Option<u16>,
    #[command(flatten)]
    pub dev: super::ssh::DevArgs,
}

/// `-p`, as `run`, `create` and `restore` take it.
#[derive(Args)]
pub struct PublishArgs {
    /// Publish a port: [HOSTIP:]HOSTPORT:PODPORT[/tcp|/udp], or PODPORT for a
    /// free host port (needs a pod network).
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Give the pod a route port, [HOSTIP:]HOSTPORT or auto (HOSTIP defaults to
    /// 127.0.0.1): a request for localhost-N.<anything> there reaches port N
    /// of the pod, any other its default port.
    #[arg(long, value_name = "[HOSTIP:]HOSTPORT|auto")]
    pub route: Option<String>,
}

/// `run` and `create`.
#[derive(Args)]
pub struct RunArgs {
    /// Run in the background and print the pod id.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Remove the pod when it exits.
    #[arg(long)]
    pub rm: bool,
    #[command(flatten)]
    pub pod: PodArgs,
    pub image: String,
    /// Command and arguments (default: the image's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

/// The pod's options from `run`/`create` arguments, each value parsed the
/// way every entry point parses it (`bundle`'s parsers); what depends on the
/// sandbox (platform, pids limit) is checked by `pod::create` for every
/// front end. The errors stay `BundleError`s and `PodError`s (exit 2).
impl TryFrom<&RunArgs> for PodOptions {
    type Error = anyhow::Error;

    fn try_from(r: &RunArgs) -> anyhow::Result<PodOptions> {
        let a = &r.pod;
        let mut env = vec![];
        for f in &a.env_file {
            env.extend(bundle::parse_env_file(f)?);
        }
        for e in &a.env {
            bundle::check_env(e)?;
            env.push(e.clone());
        }
        let mut runsc_flags = vec![];
        for f in &a.runsc_flag {
            let (k, v) = f.split_once('=').ok_or_else(|| {
                PodError::Usage(format!("invalid --runsc-flag {f:?}: use NAME=VALUE"))
            })?;
            runsc_flags.push((k.trim_start_matches('-').to_string(), v.to_string()));
        }
        let opts = PodOptions {
            cmd: r.cmd.clone(),
            entrypoint: a.entrypoint.clone(),
            env,
            workdir: a.workdir.clone(),
            user: a.user.clone(),
            hostname: a.hostname.clone(),
            volumes: a
                .volume
                .iter()
                .map(|v| bundle::parse_volume(v))
                .collect::<Result<_, _>>()?,
            memory: a.memory.as_deref().map(bundle::parse_memory).transpose()?,
            cpus: a.cpus.as_deref().map(bundle::parse_cpus).transpose()?,
            pids_limit: a.pids_limit,
            storage_size: a
                .storage_opt
                .as_deref()
                .map(bundle::parse_storage_opt)
                .transpose()?,
            read_only: a.read_only,
            network: a.network.clone(),
            publish: a.ports.publish.clone(),
            route: a.ports.route.clone(),
            route_default: a.route_default,
            ip: a.ip.clone(),
            dns: a.dns.clone(),
            add_hosts: a.add_host.clone(),
            platform: a.platform.clone(),
            runsc_flags,
            tty: a.tty,
            interactive: a.interactive,
            restart: bundle::parse_restart(&a.restart)?,
            labels: a
                .label
                .iter()
                .map(|l| bundle::parse_label(l))
                .collect::<Result<_, _>>()?,
            expose: a
                .expose
                .iter()
                .map(|e| bundle::parse_expose(e))
                .collect::<Result<_, _>>()?,
            dev: a.dev.to_access()?,
            setup: vec![],
            services: Default::default(),
            log: bundle::LogLimits {
                max_size: a
                    .log_max_size
                    .as_deref()
                    .map(bundle::parse_log_max_size)
                    .transpose()?,
                max_file: a.log_max_file.map(bundle::parse_log_max_file).transpose()?,
            },
        };
        Ok(opts)
    }
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Create and start a pod.
    Run(RunArgs),
    /// Create a pod without starting it.
    Create(RunArgs),
    /// Start created or stopped pods.
    Start {
        /// Attach to the pod's output and wait for it.
        #[arg(short = 'a', long)]
        attach: bool,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// List pods.
    Ps {
        /// Show all pods (default: running only).
        #[arg(short = 'a', long)]
        all: bool,
        /// Print ids only.
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Only the pods of this project (`gvpod up`).
        #[arg(long, value_name = "NAME")]
        project: Option<String>,
        /// Output format: table or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Show a pod as JSON.
    Inspect {
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Print a pod's output.
    Logs {
        /// Follow the output until the pod stops.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long, short = 'n')]
        tail: Option<usize>,
        /// Only lines since an RFC 3339 time or a duration ago (10m, 1h).
        #[arg(long)]
        since: Option<String>,
        /// Prefix each line with its time.
        #[arg(short = 't', long)]
        timestamps: bool,
        /// The log of one of the pod's supervised services.
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
        pod: String,
    },
    /// Run a command in a running pod.
    Exec {
        #[arg(short = 'i', long)]
        interactive: bool,
        #[arg(short = 't', long)]
        tty: bool,
        #[arg(short = 'e', long = "env")]
        env: Vec<String>,
        #[arg(short = 'u', long)]
        user: Option<String>,
        #[arg(short = 'w', long)]
        workdir: Option<String>,
        pod: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        cmd: Vec<String>,
    },
    /// Stop pods: the image's stop signal, then SIGKILL after a grace time.
    Stop {
        /// Seconds to wait before SIGKILL.
        #[arg(short = 't', long, default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Send a signal to pods.
    Kill {
        #[arg(short = 's', long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Remove pods.
    Rm {
        /// Kill running pods first.
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Wait for pods to exit and print their exit codes.
    Wait {
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Import a rootfs tarball (plain, gzip or zstd) as an image.
    Import {
        /// Dockerfile instruction to apply (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, STOPSIGNAL).
        #[arg(short = 'c', long)]
        change: Vec<String>,
        file: PathBuf,
        reference: String,
    },
    /// Pull an image from a registry.
    Pull {
        /// No progress output.
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Require HTTPS with a valid certificate (registries on loopback always use plain HTTP).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
        tls_verify: bool,
        /// OS/ARCH[/VARIANT] to pick from a multi-platform image (default: the host's).
        #[arg(long, value_name = "OS/ARCH")]
        platform: Option<String>,
        image: String,
    },
    /// Push an image to a registry.
    Push {
        /// No progress output.
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Require HTTPS with a valid certificate (registries on loopback always use plain HTTP).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
        tls_verify: bool,
        image: String,
        /// Destination reference (default: IMAGE).
        dest: Option<String>,
    },
    /// Store credentials for a registry (checked against it first).
    Login {
        #[arg(short = 'u', long)]
        username: Option<String>,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
        tls_verify: bool,
        registry: String,
    },
    /// Forget the stored credentials of a registry.
    Logout { registry: String },
    /// Load images from an OCI layout directory, an oci-archive or a docker-archive (gzip/zstd too).
    Load {
        /// Archive file or OCI layout directory; `-` (default) reads stdin.
        #[arg(short = 'i', long = "input", default_value = "-")]
        input: PathBuf,
        /// Print nothing.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Save images to an archive.
    Save {
        /// Output file.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// Archive format.
        #[arg(long, value_enum, default_value = "oci-archive")]
        format: SaveFormat,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Give an image another name: gvpod tag SOURCE TARGET.
    Tag { source: String, target: String },
    /// List images.
    Images {
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Remove images.
    Rmi {
        /// Also remove pods that use them.
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCmd),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// List a pod's published ports and route port; with --listening, the
    /// ports processes in the pod listen on, with the URLs that reach them.
    Port {
        pod: String,
        /// List the TCP ports listened on inside the pod.
        #[arg(long)]
        listening: bool,
        /// Output format (with --listening): table or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Route localhost-PORT.pod-NAME.localhost (and PORT--NAME.localhost) to
    /// port PORT of running pod NAME, in the foreground until stopped.
    Router {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "IP:PORT")]
        listen: String,
    },
    /// Show pods' cpu, memory, network, block I/O and pids use (running pods when none is named).
    Stats {
        pods: Vec<String>,
        /// Show every pod (default: running only).
        #[arg(short = 'a', long)]
        all: bool,
        /// Print one sample and exit (default: redraw every second until Ctrl-C).
        #[arg(long)]
        no_stream: bool,
        /// Output format: table or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// List the processes inside a running pod.
    Top {
        pod: String,
        /// Output format: table or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Host-wide information and maintenance.
    #[command(subcommand)]
    System(SystemCmd),
    /// Save a running pod as a snapshot (memory, filesystem changes, settings).
    Checkpoint(super::snapshot::CheckpointArgs),
    /// Bring a snapshot back: as its pod if that is gone or stopped, else as a clone.
    Restore(super::snapshot::RestoreArgs),
    /// Manage snapshots.
    #[command(subcommand)]
    Snapshot(super::snapshot::SnapshotCmd),
    /// Make a new image from a pod's filesystem changes.
    Commit(super::snapshot::CommitArgs),
    /// Open a login shell (or run CMD) in a pod as its dev user (--dev-user); no sshd needed.
    Ssh(super::ssh::SshArgs),
    /// Print the ssh client config that reaches --ssh pods as NAME.gvpod.
    SshConfig(super::ssh::SshConfigArgs),
    /// Print the merged, validated pod spec (gvpod.yaml, or -f FILE...).
    Config(super::config::ConfigArgs),
    /// Create and start a project's networks and pods from its spec.
    Up(super::project::UpArgs),
    /// Remove a project's pods and networks.
    Down(super::project::DownArgs),
    /// List, start, stop or restart a pod's supervised services.
    #[command(subcommand)]
    Service(super::project::ServiceCmd),
    /// Generate files from pods or spec files (kube: Kubernetes manifests).
    #[command(subcommand)]
    Generate(super::kube::GenerateCmd),
    /// Manage the Lima machine gvpod runs in on macOS (init, start, stop, rm,
    /// ls, status, ssh, env); other verbs go to it when it runs (or GVPOD_MACHINE=NAME).
    #[command(subcommand)]
    Machine(super::machine::MachineCmd),
    /// ssh's ProxyCommand: connect stdin/stdout to sshd of pod NAME (NAME.gvpod).
    SshProxy(super::ssh::SshProxyArgs),
    /// Benchmark runtimes side by side (runsc platforms, releases, runc):
    /// startup, exec, syscall, fileio and density, median/p95/CV, ratios to a baseline.
    Bench(super::bench::BenchArgs),
    /// Internal: the per-pod monitor process.
    #[command(name = "__monitor", hide = true)]
    Monitor {
        id: String,
        /// Restore from the memory image in this directory instead of starting afresh.
        #[arg(long)]
        restore: Option<PathBuf>,
        /// Started before the pod exists: wait for the client's go.
        #[arg(long)]
        early: bool,
    },
}

/// `gvpod save --format`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SaveFormat {
    OciArchive,
    DockerArchive,
}

#[derive(Subcommand)]
pub enum ImageCmd {
    /// Show images as JSON (id, digest, references, config, layers, size, created).
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove blobs and cached layers that no image uses.
    Prune {
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// List images.
    Ls {
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Remove images.
    Rm {
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a network (a bridge with its own subnet, isolated from other networks).
    Create {
        /// IPv4 subnet, e.g. 198.18.5.0/24 (default: the first free /24 of 198.18.0.0/16).
        #[arg(long)]
        subnet: Option<String>,
        /// Gateway address (default: the subnet's first address).
        #[arg(long)]
        gateway: Option<String>,
        /// No traffic to or from outside the network (no egress).
        #[arg(long)]
        internal: bool,
        name: String,
    },
    /// List networks.
    Ls {
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Show networks as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks (refused while pods use them).
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum SystemCmd {
    /// runsc version and features, platform, cgroups, data root.
    Info {
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// After a host reboot: start the pods whose restart policy says so
    /// (always; unless-stopped unless stopped by the user; on-failure if it
    /// was running). Exits non-zero if any failed to start.
    Boot {
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Remove everything of this data root that no pod owns (safe while pods run).
    Gc {
        #[arg(long, default_value = "table")]
        format: String,
        /// Instead: remove the host objects (bridges, firewall tables, runsc
        /// state under /run/gvpod, mounts, cgroups, monitors) of data roots
        /// that were deleted; never those of a root that exists.
        #[arg(long)]
        orphans: bool,
        /// With --orphans: only list what would be removed.
        #[arg(long, requires = "orphans")]
        dry_run: bool,
    },
    /// Serve the Docker Engine API on a unix socket (docker CLI, dockerode).
    /// Pods do not depend on it: it exits when idle and they run on.
    Service {
        /// Exit after this many seconds with no request, stream or open
        /// connection (0: never).
        #[arg(long = "time", short = 't', default_value_t = 5)]
        time: u64,
        /// Where to listen (default: unix:///run/gvpod/gvpod.sock, or the
        /// socket systemd passed).
        address: Option<String>,
        /// Also serve the shared dev-access router (as `gvpod router`) on
        /// IP:PORT; the service then does not exit when idle.
        #[arg(long, value_name = "IP:PORT")]
        router: Option<String>,
    },
}
