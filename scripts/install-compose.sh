#!/usr/bin/env bash
# install-compose.sh: make `docker compose` (Compose v2) available.
#
# Debian packages only Compose v1 (docker-compose 1.29), which cannot read
# this project's docker-compose.yml (env_file with path/required). When
# `docker compose version` does not report v2.24 or newer, this builds
# Compose v2 from the Go module proxy, pinned by tools/compose/go.mod and
# go.sum, into the docker CLI's plugin directory:
#
#   scripts/install-compose.sh
#   install-compose: built docker compose v2.40.3 in 151s -> /root/.docker/cli-plugins/docker-compose
#
# About 2.5 minutes the first time on 2 cores; the Go build and module caches
# make later builds fast. Needs Go (the version in tools/compose/go.mod).
# Environment: DOCKER_CONFIG (default ~/.docker), FORCE=1 to rebuild anyway.
set -euo pipefail

case ${1:-} in
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  "") ;;
  *)
    echo "usage: $0 [--help]" >&2
    exit 2
    ;;
esac

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOLS=$SCRIPT_DIR/../tools/compose
want=$(awk '$1 == "require" && $2 == "github.com/docker/compose/v2" { print $3 }' "$TOOLS/go.mod")
[[ -n $want ]] || {
  echo "install-compose: no github.com/docker/compose/v2 requirement in $TOOLS/go.mod" >&2
  exit 1
}
dest=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins/docker-compose

# have: the version `docker compose` reports now (empty when none).
have=$(docker compose version --short 2>/dev/null || true)
have=${have#v}
if [[ ${FORCE:-0} != 1 && $have =~ ^2\.([0-9]+)\. ]] && ((BASH_REMATCH[1] >= 24)); then
  echo "install-compose: docker compose $have is already installed"
  exit 0
fi
command -v go >/dev/null || {
  echo "install-compose: Go is needed to build Compose v2" >&2
  exit 1
}
mkdir -p "$(dirname "$dest")"
echo "install-compose: building docker compose $want (found: ${have:-none}); about 2.5 minutes the first time"
start=$SECONDS
(
  cd "$TOOLS"
  GOFLAGS=-mod=readonly CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$want" \
    -o "$dest.tmp" github.com/docker/compose/v2/cmd
)
mv "$dest.tmp" "$dest"
echo "install-compose: built docker compose $want in $((SECONDS - start))s -> $dest"
docker compose version
