#!/usr/bin/env bash
# One-command set-up on a fresh Debian/Ubuntu host: installs what is missing
# (runsc from the distribution, busybox-static, the tools the tests use),
# builds gvpod, installs it to /usr/local/bin, imports the built-in busybox
# image and runs a first pod.
#
#   sudo scripts/setup.sh              # everything
#   sudo scripts/setup.sh --deps-only  # only the system packages (used by CI)
set -euo pipefail
cd "$(dirname "$0")/.."

DEPS_ONLY=0
[ "${1:-}" = "--deps-only" ] && DEPS_ONLY=1

if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: run as root (sudo scripts/setup.sh): gvpod mounts filesystems and starts sandboxes" >&2
    exit 2
fi

# runsc: gVisor's runtime. busybox-static: the built-in default image.
# nftables: gvpod's firewall (NAT, isolation, published ports).
# The rest: what the test suite and the benchmarks use (iproute2 and wrk for
# the network tests and benches/network.sh; docker-registry, apache2-utils and
# debootstrap and attr for the image tests, the Debian recipes and
# benches/pull.sh; curl, gpgv, xz-utils
# and debian-archive-keyring for scripts/fetch-runsc.sh, which fetches the
# suite's second runsc release; python3-websockets, openssh-client and
# chromium for the dev-access tests, which drive images/devbox's services
# with a WebSocket client, ssh and a headless browser; gcc and libc6-dev's
# static libc for the relay and the bench helper build.rs embeds in gvpod;
# runc, the native baseline of `gvpod bench`; g++ for libFuzzer, which the
# fuzz targets build (scripts/fuzz.sh); e2fsprogs' mkfs.ext4 for bounded
# writable layers, `--storage-opt size=`).
PKGS="runsc busybox-static tar zstd gzip iproute2 nftables hyperfine wrk podman skopeo umoci tmux python3 ca-certificates gcc libc6-dev pkg-config docker-registry apache2-utils debootstrap attr curl gpgv xz-utils debian-archive-keyring python3-websockets openssh-client chromium runc g++ e2fsprogs"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup.sh: installing$missing"
    apt-get update -qq
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    # docker-registry is only for the tests, which run their own on 127.0.0.1;
    # the package's system service (all interfaces, port 5000) is not wanted.
    case " $missing " in *" docker-registry "*)
        if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
            systemctl disable --now docker-registry >/dev/null 2>&1 || true
        fi ;;
    esac
fi
# The API tests drive gvpod with the docker CLI. Only the client is wanted:
# Debian 12 ships it in docker.io, whose daemon must not run here.
if ! command -v docker >/dev/null; then
    echo "setup.sh: installing docker.io (for the docker CLI only)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl disable --now docker.socket docker.service containerd.service >/dev/null 2>&1 || true
    fi
fi
# The dockerode tests (tests/dockerode.rs) run the dev-pod platform's npm
# client, pinned by tests/dockerode/package-lock.json (no install scripts:
# dockerode's optional native ssh helpers are not needed on a unix socket).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "setup.sh: installing nodejs and npm (for the dockerode tests)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
npm ci --prefix tests/dockerode --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
# The generate kube tests (tests/kube.rs) validate the manifests with the
# kubernetes-validate package (PyPI, pinned) in a venv of its own.
KV_VERSION=1.37.0
if ! /opt/gvpod-venv/bin/kubernetes-validate --version 2>/dev/null | grep -q "$KV_VERSION"; then
    echo "setup.sh: installing kubernetes-validate $KV_VERSION into /opt/gvpod-venv (for the generate kube tests)"
    if ! /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    fi
    /usr/bin/python3 -m venv /opt/gvpod-venv
    /opt/gvpod-venv/bin/pip install -q --disable-pip-version-check "kubernetes-validate==$KV_VERSION"
fi
[ "$DEPS_ONLY" = 1 ] && exit 0

if ! command -v cargo >/dev/null; then
    echo "setup.sh: cargo is missing; install Rust with rustup (https://rustup.rs) and run this again" >&2
    exit 2
fi
cargo build --release --locked
install -m 0755 target/release/gvpod /usr/local/bin/gvpod

tar=$(mktemp --suffix=.tar)
trap 'rm -f "$tar"' EXIT
images/busybox/build.sh "$tar" >/dev/null
gvpod import -c 'CMD ["sh"]' "$tar" busybox >/dev/null
gvpod run --rm busybox echo "hello from a gVisor pod"
