#!/usr/bin/env bash
# The seed tutorial's machines on one Linux host, for trying things by hand: network
# namespaces hadoop1..N (10.77.0.1..N/24, lo up) on a bridge in a namespace of its own,
# each with an /etc/hosts naming all of them (`ip netns exec` bind-mounts
# /etc/netns/NAME/hosts over /etc/hosts). tests/tests/seed.rs builds the same thing
# itself, in Rust, and removes it afterwards. Needs root and iproute2.
#
#   sudo tests/netns-hosts.sh up 4        # hadoop1..hadoop4
#   sudo ip netns exec hadoop1 rookery serve --config /path/to/hadoop1/zoo.cfg &
#   sudo ip netns exec hadoop1 rookery status --config /path/to/hadoop1/zoo.cfg
#   sudo tests/netns-hosts.sh down 4      # kills what runs in them, removes them
set -euo pipefail

cmd=${1:-}
n=${2:-3}
switch=hadoop-sw

up() {
    local hosts i
    hosts=$'127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n'
    for i in $(seq 1 "$n"); do hosts+="10.77.0.$i"$'\t'"hadoop$i"$'\n'; done
    ip netns add "$switch"
    ip -n "$switch" link add br0 type bridge
    ip -n "$switch" link set br0 up
    for i in $(seq 1 "$n"); do
        ip netns add "hadoop$i"
        ip link add name eth0 netns "hadoop$i" type veth peer name "p$i" netns "$switch"
        ip -n "$switch" link set "p$i" master br0
        ip -n "$switch" link set "p$i" up
        ip -n "hadoop$i" addr add "10.77.0.$i/24" dev eth0
        ip -n "hadoop$i" link set eth0 up
        ip -n "hadoop$i" link set lo up
        mkdir -p "/etc/netns/hadoop$i"
        printf '%s' "$hosts" > "/etc/netns/hadoop$i/hosts"
    done
    echo "up: $(ip netns list | tr '\n' ' ')"
}

down() {
    local i ns pid
    for i in $(seq 1 "$n"); do
        ns=hadoop$i
        if ip netns list | grep -qw "$ns"; then
            for pid in $(ip netns pids "$ns"); do kill -KILL "$pid" 2>/dev/null || true; done
            ip netns del "$ns"
        fi
        rm -rf "/etc/netns/$ns"
    done
    if ip netns list | grep -qw "$switch"; then ip netns del "$switch"; fi
    rmdir /etc/netns 2>/dev/null || true
}

case $cmd in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down [N (default 3)]" >&2; exit 2 ;;
esac
