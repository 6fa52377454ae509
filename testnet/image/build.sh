#!/bin/sh
# Build the mtalab image offline: a static release binary of mtalab (glibc, crt-static) in a
# FROM scratch image, tagged mtalab:local (or $MTALAB_IMAGE). No registry is contacted.
#
#   testnet/image/build.sh
#
# Environment: MTALAB_IMAGE (tag), CARGO_TARGET_DIR (default target/image in the repository).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
image=${MTALAB_IMAGE:-mtalab:local}
triple=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/image}"
# Static linking for the target only (build scripts and proc macros stay dynamic): the
# explicit --target keeps RUSTFLAGS away from them.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --manifest-path "$root/Cargo.toml" --target "$triple" --bin mtalab
bin="$CARGO_TARGET_DIR/$triple/release/mtalab"
if ldd "$bin" >/dev/null 2>&1 && ! ldd "$bin" 2>&1 | grep -q "statically linked"; then
    echo "build.sh: $bin is dynamically linked; the scratch image needs a static binary" >&2
    exit 1
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
if command -v strip >/dev/null 2>&1; then strip -o "$ctx/mtalab" "$bin"; else cp "$bin" "$ctx/mtalab"; fi
"$ctx/mtalab" --version >/dev/null
cp "$root/testnet/image/Dockerfile" "$ctx/Dockerfile"
docker build -q -t "$image" "$ctx" >/dev/null
echo "built $image ($(docker image inspect --format '{{.Size}}' "$image") bytes) from $bin"
