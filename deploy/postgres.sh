#!/bin/sh
# A PostgreSQL server for the store, in a folder of its own, listening on 127.0.0.1 only (Debian's
# `postgresql` package: `make postgres` installs it). The test suite starts its servers with this script.
#
#   deploy/postgres.sh start DIR [PORT]    initialise DIR the first time, start, print the store's URL
#   deploy/postgres.sh stop DIR [MODE]     stop: MODE fast (default) or immediate (as if it crashed)
#   deploy/postgres.sh url DIR             print the URL again
#
# Then: ASSISTANT_DATABASE_URL="$(deploy/postgres.sh url DIR)" make run
# The database `assistant` belongs to the role `assistant`, whose random password is kept in DIR/url
# (mode 0600). Connections over TCP need it (scram-sha-256); the Unix socket lives in DIR, which only the
# server's user can enter. Run as root, the server runs as the `postgres` user, as Debian's does.
set -eu

usage() { echo "usage: $0 start DIR [PORT] | stop DIR [fast|immediate] | url DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
command=$1
dir=$(cd "$2" && pwd)
bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$bin/postgres" ] || { echo "no PostgreSQL server in /usr/lib/postgresql: run 'make postgres'" >&2; exit 1; }

as_server() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $command in
start)
    port=${3:-5432}
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        umask 077
        password=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
        printf '%s\n' "$password" > "$dir/password"
        [ "$(id -u)" = 0 ] && chown -R postgres "$dir"
        as_server "$bin/initdb" -D "$dir/data" -U assistant --pwfile="$dir/password" --auth-host=scram-sha-256 \
            --auth-local=trust -E UTF8 --locale=C.UTF-8 > "$dir/initdb.log"
        rm "$dir/password"
        printf 'postgresql://assistant:%s@127.0.0.1:%s/assistant\n' "$password" "$port" > "$dir/url"
        echo "$port" > "$dir/port"
        fresh=1
    fi
    port=$(cat "$dir/port")
    as_server "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start > /dev/null
    if [ "${fresh:-0}" = 1 ]; then
        as_server "$bin/createdb" -h "$dir" -p "$port" -U assistant assistant
    fi
    cat "$dir/url"
    ;;
stop)
    as_server "$bin/pg_ctl" -D "$dir/data" -m "${3:-fast}" -w -t 60 stop > /dev/null
    ;;
url)
    cat "$dir/url"
    ;;
*)
    usage
    ;;
esac
