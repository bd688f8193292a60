#!/usr/bin/env bash
# The local services the scale-out tests talk to: PostgreSQL (shared store, tenant
# databases), Redis and RabbitMQ (Celery brokers). As root on Debian/Ubuntu, installs what is missing;
# everywhere, starts what is installed but not running. Idempotent.
#
# A PostgreSQL installed here gets login roles `root` and `postgres` with a random password
# kept in root's ~/.pgpass (libpq reads it), so the tests reach it over 127.0.0.1 without
# loosening the server's authentication.
set -uo pipefail

installed_pg=0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing=()
    command -v pg_ctlcluster >/dev/null 2>&1 || { missing+=(postgresql); installed_pg=1; }
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    # the other Celery broker (tests/cluster/test_failover.py)
    command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
    # validates docs/cluster/compose.yaml (tests/cluster/test_compose.py)
    command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
    # the cluster test's balancer and its bridges into network namespaces (tests/cluster/test_failover.py)
    command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
    command -v socat >/dev/null 2>&1 || missing+=(socat)
    # scraped by tests/integration/test_prometheus.py
    command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
    # the browser of the console's end-to-end tests (tests/console/test_browser.py)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    # the ACME server of the custom-domain certificate tests (tests/edge/test_acme.py)
    command -v pebble >/dev/null 2>&1 || missing+=(pebble)
    # the TLS client those tests and tests/edge/test_tls.py serve HTTPS to
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "services: installing ${missing[*]}"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
            || echo "services: could not install ${missing[*]} (their tests will skip, naming it)" >&2
    fi
fi

if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 2>/dev/null; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 40); do pg_isready -q -h 127.0.0.1 2>/dev/null && break; sleep 0.25; done
fi
if [ "$installed_pg" = 1 ] && pg_isready -q -h 127.0.0.1 2>/dev/null; then
    password="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    su postgres -c "psql -q -v ON_ERROR_STOP=1" <<SQL && {
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'root') THEN CREATE ROLE root; END IF;
END \$\$;
ALTER ROLE root SUPERUSER LOGIN PASSWORD '$password';
ALTER ROLE postgres PASSWORD '$password';
SQL
        umask 077
        grep -v '^127.0.0.1:5432:\*:\(root\|postgres\):' "$HOME/.pgpass" 2>/dev/null > "$HOME/.pgpass.new" || true
        printf '127.0.0.1:5432:*:root:%s\n127.0.0.1:5432:*:postgres:%s\n' "$password" "$password" >> "$HOME/.pgpass.new"
        mv "$HOME/.pgpass.new" "$HOME/.pgpass"
        echo "services: PostgreSQL roles root and postgres can log in over 127.0.0.1 (password in ~/.pgpass)"
    }
fi
if command -v redis-server >/dev/null 2>&1 && ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    echo "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
if command -v rabbitmq-server >/dev/null 2>&1 && ! (: </dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    echo "starting RabbitMQ"
    rabbitmq-server -detached >/dev/null 2>&1 || true
    for _ in $(seq 1 120); do (: </dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 0.5; done
fi
exit 0
