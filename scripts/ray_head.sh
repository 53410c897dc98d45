#!/usr/bin/env bash
# Start the Ray head on this node. Then on every other node: scripts/ray_worker.sh HEAD_IP[:PORT]
# and train from the head: rlvr train cluster=existing cluster.address=HEAD_IP:PORT ...
#   RAY_PORT     the head's port (default 6379)
#   RAY_NODE_IP  this node's address as the other nodes reach it (default: the first of `hostname -I`).
#                Ray replaces 127.0.0.1 by the external address; other loopback addresses (127.0.0.2)
#                are kept, which is how tests/system/test_multinode.py runs two nodes on one machine.
# Extra arguments go to `ray start` (--num-gpus=8, --block, --temp-dir=DIR, --resources=JSON, ...).
# Token auth: every node and the driver need the same token (~/.ray/auth_token on a shared home, or
# RAY_AUTH_MODE=token RAY_AUTH_TOKEN=... in the environment of each).
set -euo pipefail
PORT=${RAY_PORT:-6379}
IP=${RAY_NODE_IP:-$(hostname -I | awk '{print $1}')}
echo "ray head at $IP:$PORT; other nodes: scripts/ray_worker.sh $IP:$PORT" >&2
exec ray start --head --node-ip-address="$IP" --port="$PORT" --dashboard-host=127.0.0.1 --disable-usage-stats "$@"
