#!/usr/bin/env bash
# Make sure the services the test suite needs are answering:
#   PostgreSQL on 127.0.0.1:5432 with a database `test` (trust auth for local TCP),
#   Redis on 127.0.0.1:6379,
#   Chromium at /usr/bin/chromium (Debian's package; the web UI's Playwright tests drive it),
#   wrk (Debian's package; tests/test_soak.py and the benchmarks generate load with it).
# Started when installed but stopped; installed from the distribution's packages when missing and
# we are root; otherwise the exact command to run is printed and the script fails.
set -uo pipefail

say() { printf 'ensure-services: %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
    for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
    return 1
}
as_root() { [ "$(id -u)" -eq 0 ]; }
have() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
    if as_root && have apt-get; then
        say "installing $* from the distribution's packages"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
        return $?
    fi
    return 1
}

postgres_clusters() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }

start_postgres() {
    local version
    version="$(postgres_clusters)"
    [ -n "$version" ] || return 1
    say "starting PostgreSQL $version"
    if have pg_ctlcluster; then
        pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || pg_ctlcluster "$version" main start
    fi
    wait_port 5432
}

trust_local_tcp() {
    # A fresh Debian cluster asks local TCP clients for a password; the tests connect without one.
    local hba
    hba="$(ls /etc/postgresql/*/main/pg_hba.conf 2>/dev/null | head -n 1)"
    [ -n "$hba" ] || return 0
    if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
        sed -i '0,/^host/s//host    all             all             127.0.0.1\/32            trust\nhost/' "$hba"
        su postgres -c "psql -qc 'SELECT pg_reload_conf()'" >/dev/null 2>&1 || true
    fi
}

ensure_postgres() {
    if ! port_open 5432; then
        if [ -z "$(postgres_clusters)" ]; then
            if apt_install postgresql; then
                trust_local_tcp
            else
                say "PostgreSQL is not installed. Run: sudo apt-get install -y postgresql && sudo $0"
                return 1
            fi
        fi
        if ! start_postgres; then
            say "PostgreSQL did not start. Run: sudo pg_ctlcluster \$(ls /etc/postgresql) main start"
            return 1
        fi
    fi
    if have psql && ! psql -h 127.0.0.1 -U postgres -d test -qAtc 'SELECT 1' >/dev/null 2>&1; then
        if as_root && have su; then
            su postgres -c "createdb test" >/dev/null 2>&1 || true
        fi
        if ! psql -h 127.0.0.1 -U postgres -d test -qAtc 'SELECT 1' >/dev/null 2>&1; then
            say "cannot connect to postgresql://postgres@127.0.0.1:5432/test without a password."
            say "Run: sudo -u postgres createdb test, and allow trust auth for 127.0.0.1 in pg_hba.conf"
            return 1
        fi
    fi
    say "PostgreSQL is up on 127.0.0.1:5432"
}

ensure_redis() {
    if ! port_open 6379; then
        if ! have redis-server && ! apt_install redis-server; then
            say "Redis is not installed. Run: sudo apt-get install -y redis-server"
            return 1
        fi
        say "starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
        if ! wait_port 6379; then
            say "Redis did not start. Run: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no"
            return 1
        fi
    fi
    say "Redis is up on 127.0.0.1:6379"
}

ensure_chromium() {
    if [ ! -x /usr/bin/chromium ] && ! apt_install chromium; then
        say "Chromium is not installed. Run: sudo apt-get install -y chromium"
        return 1
    fi
    say "Chromium is at /usr/bin/chromium"
}

ensure_wrk() {
    if ! have wrk && ! apt_install wrk; then
        say "wrk is not installed. Run: sudo apt-get install -y wrk"
        return 1
    fi
    say "wrk is at $(command -v wrk)"
}

status=0
ensure_postgres || status=1
ensure_redis || status=1
ensure_chromium || status=1
ensure_wrk || status=1
exit $status
