#!/usr/bin/env bash
# Install the Debian packages a part of the project needs, when one is missing.
#
#   scripts/apt_install.sh PACKAGE...
#       Checks each package with dpkg-query; if any is missing, runs `apt-get update` then
#       `apt-get install` for the missing ones (needs root). Idempotent: with all present it
#       only checks. Log: ${AUTOTUNE_APT_LOG:-$HOME/.cache/autotune/apt-get.log}
#
# Used by .ci/run (llvm-19 for llvm-mca; PoCL, the OpenCL ICD loader and Oclgrind for the
# GPU tests) and by scripts/emulated_aarch64.sh prepare (qemu, debootstrap, cross gcc).
set -euo pipefail
LOG="${AUTOTUNE_APT_LOG:-$HOME/.cache/autotune/apt-get.log}"
say() { echo "[apt] $*" >&2; }
die() { echo "[apt] ERROR: $*" >&2; exit 1; }

missing=()
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    say "present: $*"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || die "missing Debian packages (${missing[*]}); run $0 as root"
mkdir -p "$(dirname "$LOG")"
say "installing ${missing[*]} ... (log: $LOG)"
apt-get update >"$LOG" 2>&1 || die "apt-get update failed, see $LOG"
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
    >>"$LOG" 2>&1 || die "apt-get install ${missing[*]} failed, see $LOG"
say "installed ${missing[*]}"
