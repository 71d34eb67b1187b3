//go:build tools

// Package compose pins Docker Compose v2 (the `docker compose` CLI plugin),
// which the deployment tests drive and Debian does not package:
// scripts/install-compose.sh builds it from this module.
package compose

import _ "github.com/docker/compose/v2/cmd"
