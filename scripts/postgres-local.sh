#!/usr/bin/env bash
# A scratch PostgreSQL server for Sheratan's tests and local trials, on 127.0.0.1.
#
#   scripts/postgres-local.sh start     # initdb + start on a spare port; prints the DSN
#   scripts/postgres-local.sh dsn       # the running server's DSN
#   scripts/postgres-local.sh stop      # stop it and delete its data folder
#   scripts/postgres-local.sh install   # Debian's PostgreSQL packages, when initdb/pg_ctl are missing
#   scripts/postgres-local.sh bindir    # where initdb/pg_ctl are (exit 1: not installed)
#
# Its folder is $SHERATAN_PG_DIR (default: ${TMPDIR:-/tmp}/sheratan-postgres-$UID): the data
# folder, the socket, the log and the DSN. It is a scratch server: `stop` removes the data.
# PostgreSQL refuses to run as root, so as root the server runs as the system user
# `postgres` (Debian's package makes it; created here if missing). The superuser is
# `sheratan` with a random password, which the DSN carries (the folder is 0700).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"  # runuser, useradd

dir="${SHERATAN_PG_DIR:-${TMPDIR:-/tmp}/sheratan-postgres-$(id -u)}"
data="$dir/data"

die() { echo "postgres-local: $*" >&2; exit 2; }

# The directory of initdb/pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<ver>/bin (newest).
bindir() {
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return
    fi
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$found" ] && [ -x "$found/pg_ctl" ] && [ -x "$found/initdb" ] || return 1
    echo "$found"
}

# Run a command as the server's user: ourselves, or `postgres` when we are root.
as_server() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_packages() {
    if bindir >/dev/null; then
        echo "postgres-local: PostgreSQL is installed ($(bindir))"
        return
    fi
    if [ "$(id -u)" -eq 0 ]; then as_root=(env); else as_root=(sudo -n env); fi
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -qq
    # No default cluster on port 5432: this script makes its own servers.
    "${as_root[@]}" apt-get install -y -qq postgresql-common >/dev/null
    if [ -f /etc/postgresql-common/createcluster.conf ]; then
        "${as_root[@]}" sed -i 's/^#* *create_main_cluster.*/create_main_cluster = false/' \
            /etc/postgresql-common/createcluster.conf
    fi
    "${as_root[@]}" apt-get install -y -qq postgresql >/dev/null
    bindir >/dev/null || die "installed Debian's postgresql, but found no initdb/pg_ctl"
    echo "postgres-local: installed PostgreSQL ($(bindir))"
}

spare_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running() {
    [ -f "$data/postmaster.pid" ] && as_server "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

start() {
    if running; then
        cat "$dir/dsn"
        return
    fi
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    fi
    mkdir -p "$dir"
    chmod 0700 "$dir"
    if [ ! -f "$data/PG_VERSION" ]; then
        rm -rf "$data"
        python3 -c 'import secrets; print(secrets.token_hex(16))' > "$dir/password"
        [ "$(id -u)" -eq 0 ] && chown -R postgres "$dir"
        as_server "$bin/initdb" -D "$data" -U sheratan --pwfile="$dir/password" \
            --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
            >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    local port
    port=$(spare_port)
    as_server "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=on" \
        start >/dev/null || { tail -n 20 "$dir/server.log" >&2; die "the server did not start"; }
    echo "postgresql://sheratan:$(cat "$dir/password")@127.0.0.1:$port/postgres" > "$dir/dsn"
    cat "$dir/dsn"
}

stop() {
    if [ -d "$data" ] && running; then
        as_server "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    install) install_packages ;;
    bindir) bindir ;;
    start) bin=$(bindir) || die "no initdb/pg_ctl found: run '$0 install' (Debian's packages)"; start ;;
    stop) bin=$(bindir) || { rm -rf "$dir"; exit 0; }; stop ;;
    dsn) [ -f "$dir/dsn" ] || die "no server started in $dir: run '$0 start'"; cat "$dir/dsn" ;;
    *) die "usage: $0 start|stop|dsn|install|bindir" ;;
esac
