#!/usr/bin/env bash
# Checks that the binaries the images ship link nothing the distroless runtime image
# (gcr.io/distroless/cc-debian12) lacks: only glibc (libc, libm, libpthread, libdl, librt, ...),
# libgcc_s, the dynamic loader and the vDSO. The images cannot be built on the development
# machines (no container engine), so this is what keeps the Containerfiles' runtime stage honest.
#
#   scripts/check-distroless-libs.sh [BINARY...]   (default: target/debug/eventline and
#                                                    target/debug/eventline-operator)
#
# The debug binaries the test run already built are checked: their dynamic dependencies are the
# release build's (the same crates, features and build scripts; only optimisation differs), and CI
# has no time budget for a release build of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

binaries=("$@")
[ "${#binaries[@]}" -gt 0 ] || binaries=(target/debug/eventline target/debug/eventline-operator)

# Shared objects glibc and libgcc provide (distroless/cc ships both); anything else, e.g.
# libssl, libz or libsasl2, would make the container fail at start with "cannot open shared
# object file".
allowed='^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|lib(c|m|pthread|dl|rt|util|resolv|gcc_s)\.so\.[0-9]+)$'

# unexpected BINARY: the shared objects BINARY needs that are not allowed (empty when none).
unexpected() {
  ldd "$1" | awk '{print $1}' | sed 's#^.*/##' | { grep -Ev "$allowed" || true; } | tr '\n' ' '
}

status=0
# Self-test: bash needs libtinfo, which distroless lacks: the check must say so.
if [ -z "$(unexpected /bin/bash)" ]; then
  echo "FAIL self-test: /bin/bash (libtinfo) passed the check"
  status=1
else
  echo "ok   self-test: /bin/bash is rejected ($(unexpected /bin/bash))"
fi
for binary in "${binaries[@]}"; do
  if [ ! -x "$binary" ]; then
    echo "FAIL $binary: not built (run the tests first: they build it)"
    status=1
    continue
  fi
  extra=$(unexpected "$binary")
  if [ -n "$extra" ]; then
    echo "FAIL $binary links what distroless/cc lacks: $extra"
    status=1
  else
    echo "ok   $binary links only glibc, libgcc and the loader: $(ldd "$binary" | awk '{print $1}' | sed 's#^.*/##' | tr '\n' ' ')"
  fi
done
exit "$status"
