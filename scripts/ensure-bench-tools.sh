#!/usr/bin/env bash
# Makes sure what the benchmarks in bench/ drive load with is installed: Debian's wrk.
# Quiet and quick when it is already there.
set -euo pipefail

if ! command -v wrk >/dev/null 2>&1; then
  echo "Installing Debian's wrk"
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
fi
