#!/usr/bin/env bash
# Kamailio for the Kamailio target: create its database, start it, stop it.
#
#   scripts/kamailio.sh init  DB_URL              create Kamailio's tables with the schema
#                                                 scripts of Debian's kamailio package
#   scripts/kamailio.sh start DB_URL PORT RUNDIR  start kamailio with examples/kamailio/
#                                                 kamailio.cfg on udp:127.0.0.1:PORT (0: a
#                                                 free port); pid in RUNDIR/kamailio.pid, log
#                                                 in RUNDIR/kamailio.log; prints the port
#   scripts/kamailio.sh stop  RUNDIR              stop the kamailio started there, by its pid
#
# DB_URL is written as reconciler writes it: sqlite:////abs/path.sqlite or
# postgresql://USER:PW@HOST:PORT/DB (the database must exist and be empty).
# init refuses an existing SQLite file: it never overwrites a platform's database.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CFG="$ROOT/examples/kamailio/kamailio.cfg"
SCRIPTS="standard auth_db domain alias_db usrloc"  # what kamailio.cfg uses

die() { echo "kamailio.sh: $*" >&2; exit 1; }

kamailio_url() {  # reconciler's URL → Kamailio's db_url
    case "$1" in
        sqlite:///*) echo "sqlite://${1#sqlite:///}" ;;
        postgresql://*) echo "postgres://${1#postgresql://}" ;;
        *) die "unsupported database URL (use sqlite:////PATH or postgresql://…)" ;;
    esac
}

init() {
    local url="$1" name
    case "$url" in
        sqlite:///*)
            local path="${url#sqlite:///}"
            [ -e "$path" ] && die "$path exists already; remove it first to create it anew"
            for name in $SCRIPTS; do cat "/usr/share/kamailio/db_sqlite/$name-create.sql"; done \
                | sqlite3 "$path"
            ;;
        postgresql://*)
            for name in $SCRIPTS; do
                psql -q -v ON_ERROR_STOP=1 -d "$url" -f "/usr/share/kamailio/postgres/$name-create.sql" >/dev/null
            done
            ;;
        *) die "unsupported database URL (use sqlite:////PATH or postgresql://…)" ;;
    esac
}

free_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local url="$1" port="$2" run="$3" engine=()
    [ "$port" = 0 ] && port="$(free_port)"
    mkdir -p "$run"
    case "$url" in postgresql://*) engine=(-A WITH_PGSQL) ;; esac
    # -DD: stay in the foreground (children forked), so the pid we record is kamailio's.
    kamailio -DD -E -f "$CFG" "${engine[@]}" -A "DBURL=\"$(kamailio_url "$url")\"" \
        -A "SQLCON=\"kam=>$(kamailio_url "$url")\"" \
        -A "LISTEN=udp:127.0.0.1:$port" -Y "$run" -m 32 -M 4 \
        >"$run/kamailio.log" 2>&1 &
    echo $! >"$run/kamailio.pid"
    for _ in $(seq 100); do  # ready when it listens (or gone when it failed)
        if ! kill -0 "$(cat "$run/kamailio.pid")" 2>/dev/null; then
            tail -n 20 "$run/kamailio.log" >&2
            die "kamailio did not start (log above)"
        fi
        grep -q "probe_max_receive_buffer" "$run/kamailio.log" && { echo "$port"; return; }
        sleep 0.1
    done
    stop "$run"
    die "kamailio did not come up within 10 s"
}

stop() {
    local run="$1" pid
    [ -f "$run/kamailio.pid" ] || return 0
    pid="$(cat "$run/kamailio.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$run/kamailio.pid"
}

case "${1:-}" in
    init) [ $# = 2 ] || die "usage: init DB_URL"; init "$2" ;;
    start) [ $# = 4 ] || die "usage: start DB_URL PORT RUNDIR"; start "$2" "$3" "$4" ;;
    stop) [ $# = 2 ] || die "usage: stop RUNDIR"; stop "$2" ;;
    *) die "usage: kamailio.sh init DB_URL | start DB_URL PORT RUNDIR | stop RUNDIR" ;;
esac
