#!/usr/bin/env bash
# Join the Ray cluster whose head runs at $1 (host:port, port 6379 by default).
#   RAY_NODE_IP  this node's address (default: the first of `hostname -I`; see ray_head.sh)
# Extra arguments go to `ray start` (--num-gpus=8, --block, --temp-dir=DIR, ...).
set -euo pipefail
HEAD=${1:?usage: ray_worker.sh HEAD_HOST[:PORT] [ray start options]}
[[ "$HEAD" == *:* ]] || HEAD="$HEAD:6379"
IP=${RAY_NODE_IP:-$(hostname -I | awk '{print $1}')}
exec ray start --address="$HEAD" --node-ip-address="$IP" --disable-usage-stats "${@:2}"
