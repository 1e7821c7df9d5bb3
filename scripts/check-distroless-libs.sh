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
# has no time budget for a release build of the workspace. One difference comes from the
# environment, not the profile: the image builds with LIBZ_SYS_STATIC=1 (zlib linked statically,
# distroless has no libz), while a build on a machine with zlib's development files links the
# system's libz.so.1. So libz.so.1 is accepted exactly when the binary's Containerfile sets that
# variable.
set -euo pipefail
cd "$(dirname "$0")/.."

binaries=("$@")
[ "${#binaries[@]}" -gt 0 ] || binaries=(target/debug/eventline target/debug/eventline-operator)

# Shared objects glibc and libgcc provide (distroless/cc ships both); anything else, e.g.
# libssl, libz or libsasl2, would make the container fail at start with "cannot open shared
# object file".
allowed='^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|lib(c|m|pthread|dl|rt|util|resolv|gcc_s)\.so\.[0-9]+)$'

# containerfile BINARY: the Containerfile that builds the image shipping BINARY.
containerfile() {
  case "$(basename "$1")" in
    eventline-operator) echo operator/Containerfile ;;
    eventline) echo Containerfile ;;
    *) echo /dev/null ;;
  esac
}

# unexpected BINARY: the shared objects BINARY needs that are not allowed (empty when none).
unexpected() {
  local pattern=$allowed
  if grep -q '^ENV LIBZ_SYS_STATIC=1' "$(containerfile "$1")"; then
    pattern="${allowed%)\$}|libz\.so\.1)\$"
  fi
  ldd "$1" | awk '{print $1}' | sed 's#^.*/##' | { grep -Ev "$pattern" || true; } | tr '\n' ' '
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
    libs=$(ldd "$binary" | awk '{print $1}' | sed 's#^.*/##' | tr '\n' ' ')
    note=""
    [[ "$libs" == *libz.so.1* ]] && note=" (zlib: static in the image, $(containerfile "$binary") sets LIBZ_SYS_STATIC=1)"
    echo "ok   $binary links nothing distroless/cc lacks$note: $libs"
  fi
done
exit "$status"
