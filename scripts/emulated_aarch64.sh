#!/usr/bin/env bash
# An emulated aarch64 TVM RPC device on loopback (qemu user emulation, no hardware needed).
#
#   scripts/emulated_aarch64.sh prepare
#       Install the Debian packages (qemu-user-static, debootstrap, the aarch64 cross gcc)
#       and build, once, an arm64 Debian bookworm rootfs with Python 3.11 and the aarch64
#       TVM wheels, cached outside the repo in
#       ${AUTOTUNE_AARCH64_ROOT:-$HOME/.cache/autotune/aarch64-rootfs}.
#       Idempotent: when everything is there it only checks and exits in about a second.
#   scripts/emulated_aarch64.sh start --tracker HOST:PORT --key KEY [--port PORT]
#       Start tvm.exec.rpc_server (aarch64, under qemu) in a new session, wait until it has
#       registered with the tracker and print its PID (= process group id) as the last
#       line of stdout. Progress goes to stderr; the server log to
#       ${AUTOTUNE_AARCH64_LOG_DIR:-$HOME/.cache/autotune/aarch64-logs}/rpc_server-PORT.log
#   scripts/emulated_aarch64.sh stop PID
#       Stop that server: SIGTERM to its process group, SIGKILL after 5 s.
#   scripts/emulated_aarch64.sh python [ARGS...]
#       Run the rootfs's aarch64 python3.11 (with TVM importable) under qemu.
#
# Needs root for `prepare` only (apt-get, debootstrap). binfmt_misc is NOT needed: the
# server runs as `qemu-aarch64-static -L ROOTFS ROOTFS/usr/bin/python3.11`, and
# sys.executable is a host-side launcher script so the server's `popen_worker` child
# (started with subprocess + sys.executable) is emulated too.
#
# Environment: AUTOTUNE_AARCH64_ROOT, AUTOTUNE_AARCH64_LOG_DIR, AUTOTUNE_AARCH64_START_TIMEOUT
# (seconds, default 120), AUTOTUNE_DEBIAN_MIRROR (default: the first Debian URI apt is set up with),
# AUTOTUNE_HOST_PYTHON (a host python 3 with pip; default: python3 on PATH).
set -euo pipefail

ROOT="${AUTOTUNE_AARCH64_ROOT:-$HOME/.cache/autotune/aarch64-rootfs}"
LOG_DIR="${AUTOTUNE_AARCH64_LOG_DIR:-$HOME/.cache/autotune/aarch64-logs}"
START_TIMEOUT="${AUTOTUNE_AARCH64_START_TIMEOUT:-120}"
# The mirror apt already uses on this machine (deb822 or one-line sources).
apt_mirror() {
    sed -n -e 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\{0,1\}\([^[:space:]]*\).*/\2/p' \
        /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | grep -v -- '-security' | head -n 1 || true
}
MIRROR="${AUTOTUNE_DEBIAN_MIRROR:-$(apt_mirror)}"
SUITE=bookworm
QEMU=/usr/bin/qemu-aarch64-static
SITE_REL=opt/tvm-site
LAUNCHER_REL=usr/bin/python3-qemu
ROOTFS_STAMP=.autotune-rootfs-ok
APT_PACKAGES=(qemu-user-static debootstrap gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu file)
# What the device side imports: tvm + ffi (pinned together, see TVM_NOTES.md), their
# runtime deps (numpy, ml_dtypes, typing_extensions) and the RPC server's (cloudpickle,
# tornado, psutil).
WHEELS=(apache-tvm==0.27.0.post1 apache-tvm-ffi==0.1.14.post0 numpy ml_dtypes
        typing_extensions cloudpickle tornado psutil)
WHEELS_STAMP="$SITE_REL/.autotune-wheels-$(printf '%s\n' "${WHEELS[@]}" | cksum | cut -d' ' -f1)"

say() { echo "[emulated-aarch64] $*" >&2; }
die() { echo "[emulated-aarch64] ERROR: $*" >&2; exit 1; }
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

host_python() {
    local py="${AUTOTUNE_HOST_PYTHON:-python3}"
    command -v "$py" >/dev/null 2>&1 || die "no host python '$py' (set AUTOTUNE_HOST_PYTHON)"
    echo "$py"
}

# ---------------------------------------------------------------------------- prepare
install_apt_packages() {
    bash "$(dirname "${BASH_SOURCE[0]}")/apt_install.sh" "${APT_PACKAGES[@]}"
}

build_rootfs() {
    if [ -f "$ROOT/$ROOTFS_STAMP" ]; then
        say "rootfs: present ($ROOT)"
        return
    fi
    [ "$(id -u)" -eq 0 ] || die "building the rootfs needs root (debootstrap)"
    [ ! -e "$ROOT" ] || die "$ROOT exists but is not a finished rootfs (no $ROOTFS_STAMP): remove it and rerun"
    local tmp="$ROOT.partial" log="$ROOT.debootstrap.log"
    rm -rf "$tmp"
    mkdir -p "$(dirname "$ROOT")"
    [ -n "$MIRROR" ] || die "no Debian mirror in apt's sources; set AUTOTUNE_DEBIAN_MIRROR"
    say "rootfs: debootstrap --foreign arm64 $SUITE (minbase + python3) from $MIRROR ... (log: $log)"
    # First stage only: downloads every package and unpacks the required ones; no code of
    # the target architecture is run, so no binfmt_misc is needed.
    debootstrap --arch=arm64 --foreign --variant=minbase --include=python3 \
        "$SUITE" "$tmp" "$MIRROR" >"$log" 2>&1 || die "debootstrap failed, see $log"
    # The second stage (dpkg --configure under emulation) needs binfmt_misc, which a
    # container usually lacks. Python needs no maintainer script: unpack the remaining
    # packages (the --include ones) the way debootstrap unpacks the required ones.
    say "rootfs: unpacking $(ls "$tmp"/var/cache/apt/archives/*.deb | wc -l) packages ..."
    local deb
    for deb in "$tmp"/var/cache/apt/archives/*.deb; do
        dpkg-deb --fsys-tarfile "$deb" | tar -C "$tmp" --keep-directory-symlink -xf - \
            || die "unpacking $(basename "$deb") failed"
    done
    rm -f "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*_Packages
    [ -x "$tmp/usr/bin/python3.11" ] || die "rootfs has no usr/bin/python3.11"
    # No ldconfig ran: the aarch64 ld.so finds its libraries in its default multiarch dirs.
    # Debian ships the stdlib without .pyc (its postinst compiles them): compile them with
    # the host's Python 3.11 (same bytecode magic), so a non-root server starts as fast.
    local py; py="$(host_python)"
    if "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        say "rootfs: byte-compiling the stdlib with host $("$py" -V 2>&1) ..."
        "$py" -m compileall -q -j0 -x '/(test|idlelib|lib2to3/tests)/' "$tmp/usr/lib/python3.11" >/dev/null 2>&1 || true
    fi
    touch "$tmp/$ROOTFS_STAMP"
    mv "$tmp" "$ROOT"
    say "rootfs: built ($ROOT)"
}

install_wheels() {
    if [ -f "$ROOT/$WHEELS_STAMP" ]; then
        say "wheels: present ($ROOT/$SITE_REL)"
        return
    fi
    local py site="$ROOT/$SITE_REL" tmp="$ROOT/$SITE_REL.partial" log="$ROOT/$SITE_REL.pip.log"
    py="$(host_python)"
    "$py" -m pip --version >/dev/null 2>&1 || die "host python '$py' has no pip (set AUTOTUNE_HOST_PYTHON)"
    rm -rf "$tmp"
    mkdir -p "$(dirname "$site")"
    say "wheels: pip install --target (manylinux_2_28_aarch64, cp311) ${WHEELS[*]} ... (log: $log)"
    "$py" -m pip install --disable-pip-version-check --no-input --target "$tmp" \
        --platform manylinux_2_28_aarch64 --python-version 3.11 --implementation cp \
        --only-binary=:all: "${WHEELS[@]}" >"$log" 2>&1 || die "pip install of the aarch64 wheels failed, see $log"
    rm -rf "$site"
    touch "$tmp/$(basename "$WHEELS_STAMP")"
    mv "$tmp" "$site"
    say "wheels: installed ($(cd "$site" && ls -d *.dist-info | sed 's/\.dist-info$//' | tr '\n' ' '))"
}

write_launcher() {
    # A HOST shell script used as the device python's sys.executable (argv[0] via qemu -0):
    # any subprocess the device python starts with sys.executable goes back through qemu.
    local launcher="$ROOT/$LAUNCHER_REL" want
    want=$(cat <<EOF
#!/bin/sh
# Written by scripts/emulated_aarch64.sh: runs this rootfs's aarch64 python3.11 under qemu
# user emulation, with the aarch64 TVM wheels importable. Runs on the x86-64 host.
root=\$(cd "\$(dirname "\$0")/../.." && pwd -P)
unset PYTHONHOME PYTHONSTARTUP PYTHONUSERBASE VIRTUAL_ENV
export PYTHONPATH="\$root/$SITE_REL"
exec $QEMU -L "\$root" -0 "\$0" "\$root/usr/bin/python3.11" "\$@"
EOF
)
    if [ -x "$launcher" ] && [ "$(cat "$launcher")" = "$want" ]; then
        say "launcher: present ($launcher)"
        return
    fi
    printf '%s\n' "$want" >"$launcher"
    chmod 755 "$launcher"
    say "launcher: written ($launcher)"
}

smoke_test() {
    local stamp="$ROOT/.autotune-smoke-ok" out
    if [ -f "$stamp" ] && [ "$stamp" -nt "$ROOT/$WHEELS_STAMP" ] && [ "$stamp" -nt "$ROOT/$LAUNCHER_REL" ]; then
        say "smoke test: passed before"
        return
    fi
    say "smoke test: import tvm under qemu (takes a few seconds) ..."
    out=$("$ROOT/$LAUNCHER_REL" -c 'import platform, tvm, tvm.rpc, tvm.exec.rpc_server, cloudpickle, tornado, psutil; print(platform.machine(), tvm.__version__)' 2>&1) \
        || die "import tvm under qemu failed: $(echo "$out" | tail -n 1)"
    say "smoke test: ok ($(echo "$out" | tail -n 1))"
    touch "$stamp"
}

cmd_prepare() {
    [ $# -eq 0 ] || usage
    local t0=$SECONDS
    install_apt_packages
    [ -x "$QEMU" ] || die "$QEMU missing after installing qemu-user-static"
    build_rootfs
    install_wheels
    write_launcher
    smoke_test
    say "ready: $ROOT ($(du -sh "$ROOT" 2>/dev/null | cut -f1)) in $((SECONDS - t0)) s"
}

# ------------------------------------------------------------------------------ start
require_prepared() {
    [ -x "$QEMU" ] && [ -f "$ROOT/$ROOTFS_STAMP" ] && [ -f "$ROOT/$WHEELS_STAMP" ] && [ -x "$ROOT/$LAUNCHER_REL" ] \
        || die "no prepared rootfs at $ROOT: run '$0 prepare' first"
}

# Prints "ok" once a server with KEY on PORT is free in the tracker's queue, "wait" otherwise.
# Speaks the tracker's JSON protocol directly, so the host needs no TVM for it.
tracker_poll() {
    "$(host_python)" - "$@" <<'EOF'
import json, socket, struct, sys
host, port, key, server_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
def recvall(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("tracker closed the connection")
        buf += chunk
    return buf
try:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(struct.pack("<i", 0x2F271))
        if struct.unpack("<i", recvall(s, 4))[0] != 0x2F271:
            print("not-a-tracker"); sys.exit()
        msg = json.dumps([6]).encode()  # TrackerCode.SUMMARY
        s.sendall(struct.pack("<i", len(msg)) + msg)
        size = struct.unpack("<i", recvall(s, 4))[0]
        code, summary = json.loads(recvall(s, size))
except OSError:
    print("no-tracker"); sys.exit()
mine = [i for i in summary.get("server_info", [])
        if i.get("key") == "server:" + key and int(i.get("addr", [None, -1])[1]) == server_port]
free = summary.get("queue_info", {}).get(key, {}).get("free", 0)
print("ok" if mine and free > 0 else "wait")
EOF
}

free_port() {
    "$(host_python)" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cmd_start() {
    local tracker="" key="" port=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --tracker) tracker="${2:-}"; shift 2 || usage ;;
            --key) key="${2:-}"; shift 2 || usage ;;
            --port) port="${2:-}"; shift 2 || usage ;;
            *) die "start: unknown argument '$1'" ;;
        esac
    done
    [ -n "$tracker" ] && [ -n "$key" ] || die "start needs --tracker HOST:PORT and --key KEY"
    local thost="${tracker%:*}" tport="${tracker##*:}"
    [[ "$tport" =~ ^[0-9]+$ ]] && [ -n "$thost" ] && [ "$thost" != "$tracker" ] || die "bad --tracker '$tracker' (want HOST:PORT)"
    [ -z "$port" ] && port=$(free_port)
    [[ "$port" =~ ^[0-9]+$ ]] || die "bad --port '$port'"
    require_prepared
    local state i
    for i in $(seq 20); do  # a tracker started just now may need a few seconds
        state=$(tracker_poll "$thost" "$tport" "$key" "$port")
        [ "$state" = "no-tracker" ] || break
        sleep 0.5
    done
    [ "$state" != "no-tracker" ] || die "no RPC tracker answers at $tracker"
    [ "$state" != "not-a-tracker" ] || die "$tracker is not a TVM RPC tracker"

    mkdir -p "$LOG_DIR"
    local log="$LOG_DIR/rpc_server-$port.log" pid
    say "starting aarch64 rpc_server on 127.0.0.1:$port (key $key, tracker $tracker; log: $log)"
    # setsid without --fork: a background child of a non-interactive shell is no group
    # leader, so setsid makes this very process (and everything it forks) a new session.
    setsid env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$HOME" \
        LANG=C.UTF-8 TMPDIR=/tmp \
        "$ROOT/$LAUNCHER_REL" -m tvm.exec.rpc_server --host 127.0.0.1 --port "$port" \
        --port-end "$((port + 1))" --tracker "$thost:$tport" --key "$key" \
        </dev/null >"$log" 2>&1 &
    pid=$!
    sleep 0.2
    if [ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" != "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        die "the server did not become a process-group leader"
    fi
    local t0=$SECONDS
    while true; do
        if ! kill -0 "$pid" 2>/dev/null; then
            stop_group "$pid" >/dev/null 2>&1 || true  # its children, if any are left
            die "the server exited before registering: $(grep -v '^[[:space:]]*$' "$log" 2>/dev/null | tail -n 1) (log: $log)"
        fi
        state=$(tracker_poll "$thost" "$tport" "$key" "$port")
        [ "$state" = ok ] && break
        if [ $((SECONDS - t0)) -ge "$START_TIMEOUT" ]; then
            stop_group "$pid" >/dev/null 2>&1 || true
            die "the server did not register with $tracker within ${START_TIMEOUT} s (stopped it; log: $log)"
        fi
        sleep 1
    done
    say "registered with $tracker as '$key' after $((SECONDS - t0)) s; stop with: $0 stop $pid"
    echo "$pid"
}

# ------------------------------------------------------------------------------- stop
group_alive() { kill -0 -- "-$1" 2>/dev/null; }

stop_group() {
    local pid="$1" i
    kill -TERM -- "-$pid" 2>/dev/null || true
    for i in $(seq 50); do
        group_alive "$pid" || return 0
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    for i in $(seq 20); do
        group_alive "$pid" || return 0
        sleep 0.1
    done
    return 1
}

cmd_stop() {
    [ $# -eq 1 ] || die "stop needs exactly one PID"
    local pid="$1"
    [[ "$pid" =~ ^[0-9]+$ ]] && [ "$pid" -gt 1 ] || die "bad PID '$pid'"
    if ! group_alive "$pid"; then
        say "no process group $pid: nothing to stop"
        return 0
    fi
    # Refuse a live leader that is not one of ours (a qemu-aarch64 server).
    if [ -r "/proc/$pid/cmdline" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q qemu-aarch64; then
        die "process $pid is not an emulated aarch64 server: $(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-120)"
    fi
    stop_group "$pid" || die "process group $pid survived SIGKILL"
    say "stopped process group $pid"
}

cmd_python() {
    require_prepared
    exec "$ROOT/$LAUNCHER_REL" "$@"
}

[ $# -ge 1 ] || usage
sub="$1"; shift
case "$sub" in
    prepare) cmd_prepare "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    python) cmd_python "$@" ;;
    -h|--help|help) usage ;;
    *) die "unknown subcommand '$sub' (prepare, start, stop, python)" ;;
esac
