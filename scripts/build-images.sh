#!/usr/bin/env bash
# Builds the two container images, `switchboard` and `switchboard-controller`, offline with
# buildah (vfs storage: no daemon, no overlay mounts, works unprivileged-ish and in CI) from
# locally built binaries: FROM scratch + the binary + the shared libraries it links (ldd).
#
#   scripts/build-images.sh [--profile release|dev|NAME] [--pgo] [--no-build] [--bin-dir DIR]
#                           [--tag TAG] [--repo PREFIX] [--root DIR --runroot DIR]
#
#   --profile   cargo profile of the binaries (default: release). `dev` uses the debug
#               binaries (what the tests build; much faster to build, larger images).
#   --pgo       build the proxy with profile-guided optimisation (scripts/pgo-build.sh: an
#               instrumented build, the benchmark harness's training load, a second build;
#               about 30 min on 2 cores instead of 8; 24-30% fewer instructions per
#               request, BENCHMARKS.md round fourteen).
#   --no-build  do not run cargo; take the binaries as they are in --bin-dir.
#   --bin-dir   where the binaries are (default: $CARGO_TARGET_DIR or target, then
#               release/ or debug/ by profile).
#   --tag       image tag (default: the workspace version, e.g. 0.1.0).
#   --repo      image name prefix (default: localhost/); the images are
#               ${repo}switchboard:${tag} and ${repo}switchboard-controller:${tag}.
#   --root/--runroot  buildah storage folders (default: buildah's own).
#
# Prints the two image names, one per line, on stdout when done.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release; build=1; pgo=0; bin_dir=""; tag=""; repo="localhost/"; storage=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --pgo) pgo=1; shift ;;
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --repo) repo="$2"; shift 2 ;;
    --root) storage+=(--root "$2"); shift 2 ;;
    --runroot) storage+=(--runroot "$2"); shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "build-images: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v buildah >/dev/null || { echo "build-images: buildah is not installed (apt-get install buildah, or .ci/setup)" >&2; exit 1; }
if [ -z "$tag" ]; then
  tag=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
fi
if [ -z "$bin_dir" ]; then
  dir=release; [ "$profile" = dev ] && dir=debug; [ "$profile" != dev ] && [ "$profile" != release ] && dir="$profile"
  bin_dir="${CARGO_TARGET_DIR:-target}/$dir"
fi
proxy="$bin_dir/switchboard"
if [ "$pgo" = 1 ]; then
  [ "$build" = 1 ] || { echo "build-images: --pgo builds the proxy; it does not go with --no-build" >&2; exit 2; }
  case "$profile" in release|dev) ;; *) echo "build-images: --pgo takes --profile release or dev" >&2; exit 2 ;; esac
  echo "build-images: scripts/pgo-build.sh --profile $profile" >&2
  proxy=$(scripts/pgo-build.sh --profile "$profile")
  echo "build-images: cargo build --profile $profile (the controller)" >&2
  cargo build --locked --profile "$profile" -p switchboard-controller --bin switchboard-controller >&2
elif [ "$build" = 1 ]; then
  echo "build-images: cargo build --profile $profile" >&2
  cargo build --locked --profile "$profile" -p switchboard-gateway --bin switchboard \
    -p switchboard-controller --bin switchboard-controller >&2
fi

buildah=(buildah --storage-driver vfs "${storage[@]}")
ctx_root=$(mktemp -d)
trap 'rm -rf "$ctx_root"' EXIT

# Copies a file into the staged rootfs at the same path, following symlinks.
stage() { mkdir -p "$2$(dirname "$1")"; cp -L "$1" "$2$1"; }

for bin in switchboard switchboard-controller; do
  src="$bin_dir/$bin"
  [ "$bin" = switchboard ] && src="$proxy"
  [ -x "$src" ] || { echo "build-images: $src is missing (build it, or drop --no-build)" >&2; exit 1; }
  ctx="$ctx_root/$bin"; rootfs="$ctx/rootfs"
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/tmp"
  cp "$src" "$rootfs/usr/local/bin/$bin"
  # Every shared library ldd resolves, plus the dynamic loader (the line without "=>").
  ldd "$src" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u | while read -r lib; do
    stage "$lib" "$rootfs"
  done
  chmod 1777 "$rootfs/tmp"
  cp "images/Containerfile.$bin" "$ctx/Containerfile"
  image="${repo}${bin}:${tag}"
  "${buildah[@]}" bud --quiet --layers=false -f "$ctx/Containerfile" -t "$image" "$ctx" >&2
  echo "$image"
done
