#!/usr/bin/env bash
# Builds the development image sessions get when the default image cannot be
# pulled (a machine without registry access): a Debian bookworm root
# filesystem with Node.js, npm, git, Python 3 and curl, a user 1000 (studio)
# and bash as the shell, made with debootstrap from Debian's packages and
# imported with `docker import`. Nothing is pulled from an image registry.
# Skips the work when the image exists (--force rebuilds). Prints progress.
set -euo pipefail

IMAGE="${STUDIO_DEV_IMAGE:-claude-studio-dev:latest}"
MIRROR="${STUDIO_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE="${STUDIO_DEBIAN_SUITE:-bookworm}"
log() { printf 'build-dev-image: %s\n' "$*" >&2; }

if [ "${1:-}" != "--force" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  log "building $IMAGE needs root (debootstrap, chroot)"
  exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

root=$(mktemp -d /var/tmp/claude-studio-dev.XXXXXX)
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT
started=$(date +%s)
step() { log "[$(( $(date +%s) - started ))s] $*"; }

step "1/4 a minimal Debian $SUITE from $MIRROR (debootstrap, about a minute)"
debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" 2>&1 |
  grep --line-buffered -E '^I: (Retrieving Release|Validating Packages|Checking component|Extracting|Installing core|Configuring|Base system)' |
  sed -u 's/^/  /' >&2

step "2/4 Node.js, npm, git, Python 3 and curl (apt, about a minute)"
mount -t proc proc "$root/proc"
chroot "$root" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm git python3 curl ca-certificates less procps' 2>&1 |
  grep --line-buffered -E '^(Need to get|Get:[0-9]*[05]0 |Setting up (nodejs|npm|git|python3|curl) )' |
  sed -u 's/^/  /' >&2
umount "$root/proc"

step "3/4 the session user (studio, 1000:1000), bash as the shell"
chroot "$root" sh -c '
  set -e
  groupadd -g 1000 studio
  useradd -u 1000 -g 1000 -d /home/studio -s /bin/bash studio
  mkdir -p /workspace /home/studio
  chown 1000:1000 /workspace /home/studio
  ln -sf bash /bin/sh
  printf "%s\n" "PS1='"'"'\\w \\$ '"'"'" "alias ls=\"ls --color=auto\"" > /etc/studio.rc
  apt-get clean
  rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /var/cache/debconf/*-old
'

step "4/4 importing it into Docker as $IMAGE"
tar -C "$root" -c . | docker import \
  -c 'CMD ["/bin/bash"]' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'ENV ENV=/etc/studio.rc' \
  - "$IMAGE" >/dev/null
step "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
