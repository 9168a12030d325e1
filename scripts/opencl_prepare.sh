#!/usr/bin/env bash
# OpenCL on this machine, for the GPU tests: PoCL (a CPU OpenCL), the ICD loader, Oclgrind.
#
#   scripts/opencl_prepare.sh
#       Install the Debian packages pocl-opencl-icd, ocl-icd-libopencl1 and oclgrind (apt-get
#       update first) when one is missing. Idempotent: with all present it only checks.
#       TVM's own OpenCL runtime for the pinned wheels (libtvm_runtime_opencl.so) is not a
#       Debian package: `targets.opencl_runtime` finds it through AUTOTUNE_OPENCL_RUNTIME, then
#       ../shared/tvm-opencl-runtime beside the checkout, then /work/shared/tvm-opencl-runtime;
#       the tests that need it skip, saying so, where it is absent.
#
# Needs root only to install (apt-get). Log: ${AUTOTUNE_OPENCL_LOG:-$HOME/.cache/autotune/opencl-apt.log}
set -euo pipefail

APT_PACKAGES=(pocl-opencl-icd ocl-icd-libopencl1 oclgrind)
LOG="${AUTOTUNE_OPENCL_LOG:-$HOME/.cache/autotune/opencl-apt.log}"

say() { echo "[opencl] $*" >&2; }
die() { echo "[opencl] ERROR: $*" >&2; exit 1; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    say "debian packages: present (${APT_PACKAGES[*]})"
else
    [ "$(id -u)" -eq 0 ] || die "missing Debian packages (${missing[*]}); run $0 as root"
    mkdir -p "$(dirname "$LOG")"
    say "debian packages: installing ${missing[*]} ... (log: $LOG)"
    apt-get update >"$LOG" 2>&1 || die "apt-get update failed, see $LOG"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
        >>"$LOG" 2>&1 || die "apt-get install ${missing[*]} failed, see $LOG"
    say "debian packages: installed"
fi
