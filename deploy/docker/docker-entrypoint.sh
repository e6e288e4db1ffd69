#!/bin/sh
# The entrypoint of the rookery image, after the official zookeeper image's
# docker-entrypoint.sh: the same variables, the same rules.
# - Started as root to run the server (`rookery ...`): make the data directories the
#   rookery user's, then run again as that user.
# - No $ZOO_CONF_DIR/zoo.cfg (nothing mounted there): write one from ZOO_* variables;
#   ZOO_SERVERS is a space-separated list of server.N=host:2888:3888[;2181] lines.
# - No myid in the configuration's dataDir: write ZOO_MY_ID there (default 1).
# busybox sh (POSIX), since the image has no other shell.
set -e

if [ "$1" = rookery ] && [ "$(id -u)" = 0 ]; then
    chown -R rookery:rookery "$ZOO_DATA_DIR" "$ZOO_DATA_LOG_DIR"
    exec su -p -s /bin/sh -- rookery "$0" "$@"
fi

CONFIG="$ZOO_CONF_DIR/zoo.cfg"
if [ ! -f "$CONFIG" ]; then
    {
        echo "dataDir=$ZOO_DATA_DIR"
        echo "dataLogDir=$ZOO_DATA_LOG_DIR"
        echo "tickTime=$ZOO_TICK_TIME"
        echo "initLimit=$ZOO_INIT_LIMIT"
        echo "syncLimit=$ZOO_SYNC_LIMIT"
        echo "autopurge.snapRetainCount=$ZOO_AUTOPURGE_SNAPRETAINCOUNT"
        echo "autopurge.purgeInterval=$ZOO_AUTOPURGE_PURGEINTERVAL"
        echo "maxClientCnxns=$ZOO_MAX_CLIENT_CNXNS"
        echo "standaloneEnabled=$ZOO_STANDALONE_ENABLED"
    } > "$CONFIG"
    if [ -z "$ZOO_SERVERS" ]; then
        ZOO_SERVERS="server.1=localhost:2888:3888;2181"
    fi
    for server in $ZOO_SERVERS; do
        echo "$server" >> "$CONFIG"
    done
    if [ -n "$ZOO_4LW_COMMANDS_WHITELIST" ]; then
        echo "4lw.commands.whitelist=$ZOO_4LW_COMMANDS_WHITELIST" >> "$CONFIG"
    fi
    for extra in $ZOO_CFG_EXTRA; do
        echo "$extra" >> "$CONFIG"
    done
fi

# myid goes where the configuration (written above or mounted) puts dataDir.
data_dir=$(sed -n 's/^[[:space:]]*dataDir[[:space:]]*=[[:space:]]*//p' "$CONFIG" | tail -n 1 | sed 's/[[:space:]]*$//')
data_dir=${data_dir:-$ZOO_DATA_DIR}
if [ ! -f "$data_dir/myid" ]; then
    mkdir -p "$data_dir"
    echo "${ZOO_MY_ID:-1}" > "$data_dir/myid"
fi

exec "$@"
