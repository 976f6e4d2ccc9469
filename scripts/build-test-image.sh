#!/usr/bin/env bash
# Builds the image the tests run sessions in, without any registry: a root
# filesystem of Debian's busybox-static plus a user 1000, imported with
# `docker import`. Prints the image name.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${STUDIO_TEST_IMAGE:-studio-test-busybox:latest}"
log() { printf 'build-test-image: %s\n' "$*" >&2; }

if [ ! -x /bin/busybox ] || ! /bin/busybox --list >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    log "busybox-static is missing; install it (apt-get install busybox-static)"
    exit 1
  fi
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,tmp,home/studio,workspace,usr/bin}
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
ln -sf /bin/env "$root/usr/bin/env"
cat >"$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
studio:x:1000:1000:studio:/home/studio:/bin/sh
P
cat >"$root/etc/group" <<'G'
root:x:0:
studio:x:1000:
G
# The preview tests' upstream app, linked statically so it runs on busybox.
(cd testbins/preview-upstream &&
  RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR="$PWD/../../target/testbins" \
    cargo build --quiet --release --target x86_64-unknown-linux-gnu)
mkdir -p target/test-image-bin
cp --remove-destination target/testbins/x86_64-unknown-linux-gnu/release/preview-upstream target/test-image-bin/
# Extra static programs the tests run inside the container (see scripts/test).
if [ -d target/test-image-bin ]; then
  cp target/test-image-bin/* "$root/bin/" 2>/dev/null || true
fi
tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
log "built $IMAGE"
echo "$IMAGE"
