#!/usr/bin/env bash
# Run a command with the lab up and the conformance suites' variables set
# from it: with-lab.sh CMD ARGS...  (skips with 77 when not root)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lab_require
export RDHPF_CONF_URL=$RDHPF_LAB_URL RDHPF_CONF_KEY=$RDHPF_LAB_KEY
export RDHPF_CONF_KNOWN_HOSTS=$RDHPF_LAB_KNOWN_HOSTS
# sshd's banner gives the forward probe a byte to read.
export RDHPF_CONF_FWD_REMOTE=$RDHPF_LAB_ADDR:22
exec "$@"
