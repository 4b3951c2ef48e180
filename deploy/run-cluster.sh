#!/usr/bin/env bash
# A three-node relaykit cluster on one machine, in the foreground; Ctrl-C stops it all.
#
#   nats-server  nats://127.0.0.1:4222 (JetStream, files in a temporary folder)
#   n1, n2, n3   RELAY on ws://127.0.0.1:8081..8083, SIP on udp:127.0.0.1:5071..5073
#   Kamailio     SIP on udp:127.0.0.1:5060 (spreads calls over n1..n3), JSON-RPC on udp:5090
#
# From the repository root, once:
#   apt-get install -y --no-install-recommends python3-venv nats-server kamailio
#   python3 -m venv --clear .venv && .venv/bin/pip install -e '.[cluster]'
# Project and token: $RELAYKIT_PROJECT / $RELAYKIT_TOKEN (demo / demo-token by default).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
relaykit=${RELAYKIT:-$root/.venv/bin/relaykit}
project=${RELAYKIT_PROJECT:-demo}
token=${RELAYKIT_TOKEN:-demo-token}
export PATH="$PATH:/usr/sbin"  # Debian puts nats-server and kamailio there
run=$(mktemp -d /tmp/relaykit-cluster.XXXXXX)
mkdir -p "$run/jetstream" "$run/kamailio"
nodes=()
infra=()

# Ends processes by PID: the signal, then up to 10 s for them to go, then SIGKILL.
end() {
    local signal=$1; shift
    kill "-$signal" "$@" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$@" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$@" 2>/dev/null || true
}

stop() {  # the nodes first (they end their calls and say goodbye on the bus), then the rest
    trap - INT TERM EXIT
    end INT "${nodes[@]}"
    end TERM "${infra[@]}"
    rm -rf "$run"
}
trap stop INT TERM EXIT

# nats-server and Kamailio in sessions of their own: Ctrl-C reaches the nodes first (above)
setsid nats-server -a 127.0.0.1 -p 4222 -js -sd "$run/jetstream" &
infra+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.1; done

for i in 1 2 3; do
    "$relaykit" serve --host 127.0.0.1 --port "808$i" --project "$project" --token "$token" \
        --cluster nats://127.0.0.1:4222 --node-id "n$i" \
        --sip "127.0.0.1:507$i" --route "*=office" --kamailio-rpc 127.0.0.1:5090 &
    nodes+=($!)
done

setsid kamailio -DD -E -f "$root/deploy/kamailio/kamailio.cfg" -Y "$run/kamailio" \
    -A "DISPATCHER_LIST=\"$root/deploy/kamailio/nodes.list\"" &
infra+=($!)

wait
