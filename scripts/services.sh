#!/usr/bin/env bash
# Start, stop or inspect the local Redis and single-node Apache Cassandra 5.0 that Hourglass's
# tests and local runs use, and on request a single-node Apache Kafka 4 (KRaft) for the Kafka
# ingestion path. All listen on 127.0.0.1 only; all state lives under the git-ignored
# .services/ folder at the repository root.
#
#   scripts/services.sh [start]   start Redis and Cassandra (idempotent: reuses anything already
#                                 answering); Kafka too with HOURGLASS_KAFKA=1
#   scripts/services.sh kafka     start Kafka alone (idempotent)
#   scripts/services.sh stop      stop the ones this script started (pid files in .services/)
#   scripts/services.sh status    show what is running
#   scripts/services.sh nodetool ARGS...   run Cassandra's nodetool against the local node
#                                 (e.g. `nodetool flush hourglass`, `nodetool compact ...`)
#   scripts/services.sh ring [start [N...]|stop [N...]|status|replace N|nodetool N ARGS...]
#                                 a three-node Cassandra ring on 127.0.0.2-4 (state in
#                                 .services/ring/nodeN): start waits until every node is UN;
#                                 replace N restarts a down node N with an empty disk
#                                 (replace_address_first_boot) and waits until it is UN again
#
# Environment:
#   HOURGLASS_REDIS_PORT              Redis port                        (default 6379)
#   HOURGLASS_CASSANDRA_PORT          CQL native port                   (default 9042)
#   HOURGLASS_CASSANDRA_STORAGE_PORT  inter-node port (bound, unused)   (default 7000)
#   HOURGLASS_CASSANDRA_JMX_PORT      local-only JMX port, for nodetool (default 7199)
#   HOURGLASS_CASSANDRA_HEAP          -Xms/-Xmx                         (default 1G)
#   HOURGLASS_CASSANDRA_VERSION       cassandra-all version to fetch    (default: the pom's)
#   HOURGLASS_CASSANDRA_START_TIMEOUT seconds to wait for CQL           (default 180)
#   HOURGLASS_CASSANDRA_PASSWORD_FILE the role hourglass's password     (default .services/cassandra/hourglass.password)
#   HOURGLASS_KAFKA                   1: `start` starts Kafka as well       (default 0)
#   HOURGLASS_KAFKA_PORT              Kafka client (PLAINTEXT) port      (default 9092)
#   HOURGLASS_KAFKA_CONTROLLER_PORT   KRaft controller port              (default 9093)
#   HOURGLASS_KAFKA_HEAP              -Xmx of the broker                 (default 512m)
#   HOURGLASS_KAFKA_VERSION           kafka_2.13 version to fetch        (default: the pom's)
#   HOURGLASS_KAFKA_START_TIMEOUT     seconds to wait for the broker     (default 120)
#   HOURGLASS_RING_ADDRESSES          the ring's nodes, the first the seed (default 127.0.0.2,127.0.0.3,127.0.0.4)
#   HOURGLASS_RING_PORT / _STORAGE_PORT  CQL and storage ports, the same on each address (default 9042 / 7000)
#   HOURGLASS_RING_JMX_PORT           node N's JMX port is this + N - 1 (default 7201)
#   HOURGLASS_RING_HEAP               -Xms/-Xmx of each ring node      (default 640M)
#   HOURGLASS_SERVICES_DIR            state folder: pid files, data, logs (default .services; a
#                                     second instance, e.g. the chaos harness's, needs its own)
#   PYTHON                            python with cassandra-driver      (default .venv/bin/python,
#                                     then python3); relative paths are from the repo root
#
# Cassandra authenticates: clients log in as `hourglass`, whose password scripts/cassandra_roles.py
# writes to .services/cassandra/hourglass.password (store URL
# cassandra://hourglass@127.0.0.1:9042/KEYSPACE?password_file=$PWD/.services/cassandra/hourglass.password).
#
# Cassandra does not come as a Debian package or tarball here: its jars are fetched from Maven
# Central (scripts/cassandra/pom.xml) into .services/cassandra/lib on first use, and the daemon is
# launched the way Cassandra's own bin/cassandra + conf/cassandra-env.sh would, with the options in
# scripts/cassandra/jvm-server.options. Kafka likewise: no Apache mirror is reachable, so its jars
# come from Maven Central (scripts/kafka/pom.xml) into .services/kafka/lib, its storage is
# formatted once (what `kafka-storage.sh format --standalone` does) and kafka.Kafka is launched
# as bin/kafka-server-start.sh would, with scripts/kafka/server.properties.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Cassandra 5.0 supports Java 11 and 17 only. Pin the Debian JDK 17 explicitly: JAVA_HOME / PATH
# may well point at a newer JDK (e.g. Temurin 25) on which Cassandra 5.0 refuses to run.
CASSANDRA_JAVA_HOME="/usr/lib/jvm/java-17-openjdk-amd64"
JAVA="$CASSANDRA_JAVA_HOME/bin/java"

SERVICES_DIR="${HOURGLASS_SERVICES_DIR:-$ROOT/.services}"
CONF_SRC="$ROOT/scripts/cassandra"

REDIS_PORT="${HOURGLASS_REDIS_PORT:-6379}"
REDIS_DIR="$SERVICES_DIR/redis"
REDIS_PIDFILE="$REDIS_DIR/redis.pid"

CASS_HOST=127.0.0.1
CASS_PORT="${HOURGLASS_CASSANDRA_PORT:-9042}"
CASS_STORAGE_PORT="${HOURGLASS_CASSANDRA_STORAGE_PORT:-7000}"
CASS_JMX_PORT="${HOURGLASS_CASSANDRA_JMX_PORT:-7199}"
CASS_HEAP="${HOURGLASS_CASSANDRA_HEAP:-1G}"
CASS_VERSION="${HOURGLASS_CASSANDRA_VERSION:-}"
CASS_TIMEOUT="${HOURGLASS_CASSANDRA_START_TIMEOUT:-180}"
CASS_DIR="$SERVICES_DIR/cassandra"
CASS_LIB="$CASS_DIR/lib"
CASS_LOGDIR="$CASS_DIR/logs"
CASS_PIDFILE="$CASS_DIR/cassandra.pid"
# What differs on a node of the ring (ring_node sets them): seeds, token, bootstrap, hints, snitch,
# extra JVM options (a replacement's replace_address_first_boot), roles' extra arguments.
CASS_SEEDS="127.0.0.1:$CASS_STORAGE_PORT"
CASS_TOKEN=0
CASS_AUTO_BOOTSTRAP=true
CASS_HINTS=false
CASS_DYNAMIC_SNITCH=false
CASS_EXTRA_OPTS=()
CASS_ROLES_ARGS=()
# Clients log in as `hourglass` with this password (store URL: cassandra://hourglass@host/ks?password_file=..).
# A second instance (the chaos harness's) may share the first one's, so clients log in to both alike.
CASS_PASSWORD_FILE="${HOURGLASS_CASSANDRA_PASSWORD_FILE:-$CASS_DIR/hourglass.password}"

KAFKA_PORT="${HOURGLASS_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${HOURGLASS_KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP="${HOURGLASS_KAFKA_HEAP:-512m}"
KAFKA_VERSION="${HOURGLASS_KAFKA_VERSION:-}"
KAFKA_TIMEOUT="${HOURGLASS_KAFKA_START_TIMEOUT:-120}"
KAFKA_SRC="$ROOT/scripts/kafka"
KAFKA_DIR="$SERVICES_DIR/kafka"
KAFKA_LIB="$KAFKA_DIR/lib"
KAFKA_LOGDIR="$KAFKA_DIR/logs"
KAFKA_PIDFILE="$KAFKA_DIR/kafka.pid"

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

# Pid from a pid file if that process is still alive and its command line contains $2
# (guards against a stale pid file whose pid got reused by something else).
live_pid() {
    local pidfile=$1 pattern=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
    echo "$pid"
}

# Send SIGTERM, wait up to $2 seconds for the process to exit, then SIGKILL.
terminate() {
    local pid=$1 grace=$2 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "pid $pid did not exit within ${grace}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}

# Serialise concurrent invocations (e.g. two test runs starting at once). fd 9 must be closed
# in the daemons we spawn, or they would hold the lock for as long as they run.
take_lock() {
    local lock=${SERVICES_LOCK:-$SERVICES_DIR/.lock}
    mkdir -p "$(dirname "$lock")"
    exec 9>"$lock"
    flock -w 600 9 || die "could not lock $lock"
}

# A python that can import MODULE of PACKAGE (default the DataStax driver, cassandra-driver, for
# scripts/wait_cql.py): pick_python [MODULE PACKAGE].
pick_python() {
    local module=${1:-cassandra.cluster} package=${2:-cassandra-driver} candidate
    for candidate in "${PYTHON:-.venv/bin/python}" python3; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c "import $module" >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    die "no python with $package found (tried ${PYTHON:-.venv/bin/python} and python3); set PYTHON"
}

# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------

redis_ping() {
    [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

redis_start() {
    if ! command -v redis-server >/dev/null 2>&1; then
        log "installing redis-server (apt)"
        # The package's own service is not started in containers without systemd (and if it is,
        # on 6379, it is simply reused below).
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    fi
    if redis_ping; then
        log "redis: reusing the server already answering on 127.0.0.1:$REDIS_PORT"
        return 0
    fi
    mkdir -p "$REDIS_DIR"
    # Test setup: no RDB snapshots, no AOF. --daemonize forks and writes the pid file itself.
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes \
        --daemonize yes --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_DIR/redis.log" \
        --dir "$REDIS_DIR" --save '' --appendonly no 9>&-
    local i
    for ((i = 0; i < 100; i++)); do
        if redis_ping; then
            log "redis: started on 127.0.0.1:$REDIS_PORT (pid $(cat "$REDIS_PIDFILE" 2>/dev/null || echo '?'))"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$REDIS_DIR/redis.log" >&2 2>/dev/null || true
    die "redis did not answer PING on 127.0.0.1:$REDIS_PORT within 10s"
}

redis_stop() {
    local pid
    if pid=$(live_pid "$REDIS_PIDFILE" redis-server); then
        log "redis: stopping pid $pid"
        terminate "$pid" 20
    elif redis_ping; then
        log "redis: the server on 127.0.0.1:$REDIS_PORT was not started by this script; leaving it"
    else
        log "redis: not running"
    fi
    rm -f "$REDIS_PIDFILE"
}

redis_status() {
    local pid
    if pid=$(live_pid "$REDIS_PIDFILE" redis-server); then
        if redis_ping; then
            echo "redis:     running, pid $pid, 127.0.0.1:$REDIS_PORT"
        else
            echo "redis:     pid $pid alive but not answering PING on 127.0.0.1:$REDIS_PORT"
        fi
    elif command -v redis-cli >/dev/null 2>&1 && redis_ping; then
        echo "redis:     running on 127.0.0.1:$REDIS_PORT (not started by this script)"
    else
        echo "redis:     not running"
    fi
}

# --------------------------------------------------------------------------------------------
# Cassandra
# --------------------------------------------------------------------------------------------

# One CQL round trip (no retries); prints the release version on success ("?" when the node
# answered but refused the login: it is up, its roles are made by cassandra_roles below).
cql_ping() {
    "$PY" scripts/wait_cql.py --host "$CASS_HOST" --port "$CASS_PORT" --timeout 0 --password-file "$CASS_PASSWORD_FILE" 2>/dev/null
}

# The node authenticates (PasswordAuthenticator): make the role `hourglass` its clients log in
# as, with the password in $CASS_PASSWORD_FILE, and give the default superuser a private
# password (idempotent; see scripts/cassandra_roles.py).
cassandra_roles() {
    local rc=0
    "$PY" scripts/cassandra_roles.py --dir "$CASS_DIR" --password-file "$CASS_PASSWORD_FILE" --host "$CASS_HOST" \
        --port "$CASS_PORT" --timeout 90 "${CASS_ROLES_ARGS[@]}" || rc=$?
    case $rc in
        0) ;;
        3) log "cassandra: WARNING: the node on $CASS_HOST:$CASS_PORT does not authenticate; clients send credentials it ignores" ;;
        *) die "cassandra: could not make the role hourglass (see above)" ;;
    esac
}

# Jars of a server from Maven Central, once: maven_fetch NAME POM ARTIFACT LIB VERSION_PROPERTY
# [VERSION] copies ARTIFACT (e.g. cassandra-all) and its dependencies, at VERSION (default: the
# pom's), into the folder LIB; LIB/.complete (written last) holds the version fetched.
maven_fetch() {
    local name=$1 pom=$2 artifact=$3 lib=$4 property=$5 want=${6:-} have=""
    [[ -f $lib/.complete ]] && have=$(<"$lib/.complete")
    if [[ -n $have && ( -z $want || $want == "$have" ) ]]; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "maven (mvn) is needed to fetch $name"
    log "$name: fetching $artifact ${want:-(pom version)} and dependencies from Maven Central"
    local dir tmp
    dir=$(dirname "$lib")
    tmp="$lib.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    local args=(-q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies "-DoutputDirectory=$tmp")
    [[ -n $want ]] && args+=("-D$property=$want")
    # mvn -q still prints colour escapes and reports errors on stdout: keep its output in a file.
    if ! JAVA_HOME="$CASSANDRA_JAVA_HOME" mvn "${args[@]}" >"$dir/mvn.log" 2>&1; then
        tail -n 40 "$dir/mvn.log" >&2
        rm -rf "$tmp"
        die "mvn could not fetch $name (full output in ${dir#"$ROOT"/}/mvn.log)"
    fi
    local jar
    jar=$(cd "$tmp" && ls "$artifact"-*.jar 2>/dev/null | head -n1)
    [[ -n $jar ]] || { rm -rf "$tmp"; die "$artifact jar missing after mvn"; }
    jar=${jar#"$artifact"-}
    echo "${jar%.jar}" >"$tmp/.complete"   # written last: marks a complete download
    rm -rf "$lib"
    mv "$tmp" "$lib"
    log "$name: $(ls "$lib"/*.jar | wc -l) jars in $lib"
}

cassandra_fetch() {
    maven_fetch cassandra "$CONF_SRC/pom.xml" cassandra-all "$CASS_LIB" cassandra.version "$CASS_VERSION"
}

# Render the committed cassandra.yaml template with this checkout's paths and ports.
cassandra_render_config() {
    mkdir -p "$CASS_DIR/conf" "$CASS_LOGDIR" \
        "$CASS_DIR"/{data,commitlog,saved_caches,hints,cdc_raw,triggers}
    sed -e "s|@STORAGE_DIR@|$CASS_DIR|g" \
        -e "s|@NATIVE_PORT@|$CASS_PORT|g" \
        -e "s|@STORAGE_PORT@|$CASS_STORAGE_PORT|g" \
        -e "s|@ADDRESS@|$CASS_HOST|g" \
        -e "s|@SEEDS@|$CASS_SEEDS|g" \
        -e "s|@INITIAL_TOKEN@|$CASS_TOKEN|g" \
        -e "s|@AUTO_BOOTSTRAP@|$CASS_AUTO_BOOTSTRAP|g" \
        -e "s|@HINTS@|$CASS_HINTS|g" \
        -e "s|@DYNAMIC_SNITCH@|$CASS_DYNAMIC_SNITCH|g" \
        "$CONF_SRC/cassandra.yaml" >"$CASS_DIR/conf/cassandra.yaml"
    cassandra_tls_files
}

# The node's TLS key and certificate (one PEM file, as PEMBasedSslContextFactory reads it) and
# the CA that signed them (tls/ca.pem, for clients), from the dev CA; made once per data dir.
cassandra_tls_files() {
    local tls="$CASS_DIR/tls" py
    [[ -s $tls/node-keystore.pem ]] && return 0
    py=$(pick_python)
    PYTHONPATH="$ROOT/core" "$py" -c '
import sys
from pathlib import Path
from hourglass_core.dev_certs import write_dev_certificates
tls = Path(sys.argv[1])
write_dev_certificates(tls, ["localhost", "127.0.0.1"])
keystore = tls / "node-keystore.pem"
keystore.write_bytes((tls / "coordinator.key").read_bytes() + (tls / "coordinator.pem").read_bytes())
keystore.chmod(0o600)
' "$tls" || die "could not write Cassandra TLS files under $tls"
}

cassandra_launch() {
    [[ -x $JAVA ]] || die "$JAVA not found: Cassandra 5.0 needs the Java 17 JDK (apt-get install openjdk-17-jdk-headless)"
    cassandra_render_config
    # system.log is appended to across runs; remember where this run starts for error reports.
    stat -c %s "$CASS_LOGDIR/system.log" >"$CASS_LOGDIR/.launch_offset" 2>/dev/null \
        || echo 0 >"$CASS_LOGDIR/.launch_offset"

    local jamm
    jamm=$(ls "$CASS_LIB"/jamm-*.jar 2>/dev/null | head -n1)
    [[ -n $jamm ]] || die "jamm jar missing from $CASS_LIB"

    local opts=()
    # Static options, one per line; "--add-opens x" lines are two words, hence the word split.
    local line
    while IFS= read -r line; do
        [[ $line == -* ]] || continue
        # shellcheck disable=SC2206
        opts+=($line)
    done <"$CONF_SRC/jvm-server.options"

    # The dynamic part of conf/cassandra-env.sh. No -Xmn: it defeats G1's pause-time goal.
    opts+=(
        "-Xms$CASS_HEAP" "-Xmx$CASS_HEAP"
        "-javaagent:$jamm"
        "-Xlog:gc=info,heap*=info,safepoint=info:file=$CASS_LOGDIR/gc.log:time,uptime,pid,tid,level:filecount=3,filesize=10485760"
        "-Dcassandra.jmx.local.port=$CASS_JMX_PORT"
        "-Dcom.sun.management.jmxremote.authenticate=false"
        "-Dcassandra.config=file://$CASS_DIR/conf/cassandra.yaml"
        "-Dlogback.configurationFile=file://$CONF_SRC/logback.xml"
        "-Dcassandra.logdir=$CASS_LOGDIR"
        "-Dcassandra.storagedir=$CASS_DIR"
        "-Dcassandra.triggers_dir=$CASS_DIR/triggers"
        "-Dcassandra-foreground=yes"
        # The default superuser exists at once on a fresh node, not 10 s after start-up.
        "-Dcassandra.superuser_setup_delay_ms=0"
        # Passwords set on this node are hashed with bcrypt at 2^4 rounds, not 2^10: every new
        # connection checks one, and at 2^10 that costs ~0.1 s of CPU (~0.5 s a session on
        # this box) for each of the hundreds of processes a test run starts. A loopback test node;
        # a production node keeps the default.
        "-Dcassandra.auth_bcrypt_gensalt_log2_rounds=4"
        "${CASS_EXTRA_OPTS[@]}"
    )

    # Cassandra always mlockall()s its memory. As root (CAP_IPC_LOCK) that succeeds and faults in
    # the whole heap: ~5 s longer start-up and ~0.5 GiB more RSS, for swap protection a test box
    # does not need. Dropping the capability makes it fail harmlessly against RLIMIT_MEMLOCK (a
    # single "Unable to lock JVM memory" warning), exactly as for a non-root user.
    local nolock=()
    if [[ $(id -u) == 0 ]] && command -v setpriv >/dev/null 2>&1; then
        nolock=(setpriv --bounding-set -ipc_lock --inh-caps -ipc_lock)
    fi

    # setsid: own session, so a Ctrl-C in the terminal/make that ran us does not kill the node.
    # In a non-interactive script the background job is not a process-group leader, so setsid
    # (like nohup, env and setpriv) execs in place and $! is the JVM's pid.
    # MALLOC_ARENA_MAX=4 as in cassandra-env.sh: fewer glibc malloc arenas, smaller RSS.
    setsid nohup env MALLOC_ARENA_MAX=4 "${nolock[@]}" \
        "$JAVA" "${opts[@]}" -cp "$CASS_LIB/*" org.apache.cassandra.service.CassandraDaemon \
        </dev/null >"$CASS_LOGDIR/output.log" 2>&1 9>&- &
    echo $! >"$CASS_PIDFILE"
}

cassandra_show_logs() {
    log "---- tail of $CASS_LOGDIR/output.log ----"
    tail -n 30 "$CASS_LOGDIR/output.log" >&2 2>/dev/null || true
    log "---- tail of $CASS_LOGDIR/system.log (this start only) ----"
    local offset size
    offset=$(cat "$CASS_LOGDIR/.launch_offset" 2>/dev/null || echo 0)
    size=$(stat -c %s "$CASS_LOGDIR/system.log" 2>/dev/null || echo 0)
    ((offset <= size)) || offset=0   # the log rolled over meanwhile
    tail -c "+$((offset + 1))" "$CASS_LOGDIR/system.log" 2>/dev/null | tail -n 60 >&2 || true
}

cassandra_start() {
    local version pid started=$SECONDS
    if version=$(cql_ping); then
        log "cassandra: reusing the node already answering CQL on $CASS_HOST:$CASS_PORT (Cassandra $version)"
        cassandra_roles
        return 0
    fi
    if pid=$(live_pid "$CASS_PIDFILE" CassandraDaemon); then
        log "cassandra: pid $pid is already starting; waiting for it"
    else
        cassandra_fetch
        cassandra_launch
        pid=$(<"$CASS_PIDFILE")
        log "cassandra: started pid $pid (logs in ${CASS_LOGDIR#"$ROOT"/}); waiting for CQL on $CASS_HOST:$CASS_PORT"
    fi
    local rc=0
    version=$("$PY" scripts/wait_cql.py --host "$CASS_HOST" --port "$CASS_PORT" --timeout "$CASS_TIMEOUT" --pid "$pid" \
        --password-file "$CASS_PASSWORD_FILE") || rc=$?
    if ((rc == 0)); then
        log "cassandra: answering CQL on $CASS_HOST:$CASS_PORT after $((SECONDS - started))s"
        cassandra_roles
        version=$(cql_ping) || version="?"
        log "cassandra: Cassandra $version, role hourglass logs in (password in ${CASS_PASSWORD_FILE#"$ROOT"/}) after $((SECONDS - started))s"
        return 0
    fi
    cassandra_show_logs
    if ((rc == 2)); then
        rm -f "$CASS_PIDFILE"
        die "cassandra exited during start-up (see above and $CASS_LOGDIR)"
    fi
    die "cassandra (pid $pid) did not answer CQL within ${CASS_TIMEOUT}s; it is left running - 'scripts/services.sh stop' kills it"
}

cassandra_stop() {
    local pid
    if pid=$(live_pid "$CASS_PIDFILE" CassandraDaemon); then
        log "cassandra: stopping pid $pid"
        # SIGTERM runs Cassandra's shutdown hook (drains, flushes); the commit log covers the rest.
        terminate "$pid" 60
    else
        log "cassandra: not running (no live pid in ${CASS_PIDFILE#"$ROOT"/})"
    fi
    rm -f "$CASS_PIDFILE"
}

cassandra_status() {
    local pid version
    if version=$(cql_ping); then
        if pid=$(live_pid "$CASS_PIDFILE" CassandraDaemon); then
            local rss
            rss=$(awk '/^VmRSS/ {printf "%d MiB", $2 / 1024}' "/proc/$pid/status" 2>/dev/null || true)
            echo "cassandra: running, pid $pid, Cassandra $version, CQL on $CASS_HOST:$CASS_PORT, RSS ${rss:-?}"
        else
            echo "cassandra: Cassandra $version answering CQL on $CASS_HOST:$CASS_PORT (not started by this script)"
        fi
    elif pid=$(live_pid "$CASS_PIDFILE" CassandraDaemon); then
        echo "cassandra: pid $pid alive but not (yet) answering CQL on $CASS_HOST:$CASS_PORT"
    else
        echo "cassandra: not running"
    fi
}

# nodetool talks JMX (local-only, port $CASS_JMX_PORT). It needs the same JPMS openings as the
# server, but none of its GC/heap tuning.
cassandra_nodetool() {
    [[ -f $CASS_LIB/.complete ]] || die "Cassandra is not installed yet; run '$0 start' first"
    local opts=() line
    while IFS= read -r line; do
        if [[ $line == --add-* ]]; then
            # shellcheck disable=SC2206
            opts+=($line)
        fi
    done <"$CONF_SRC/jvm-server.options"
    "$JAVA" "${opts[@]}" -Xmx256m -XX:+UseSerialGC \
        "-Dlogback.configurationFile=file://$CONF_SRC/logback-tools.xml" \
        "-Dcassandra.logdir=$CASS_LOGDIR" \
        -cp "$CASS_LIB/*" org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p "$CASS_JMX_PORT" "$@"
}

# --------------------------------------------------------------------------------------------
# A three-node Cassandra ring (`ring start|stop|status|nodetool|replace`)
# --------------------------------------------------------------------------------------------
# Nodes on loopback addresses of their own (never 127.0.0.1: the single node's), each with the
# same CQL and storage ports on its address, its own JMX port (JMX binds 127.0.0.1), data and
# logs under $RING_DIR/nodeN, and the jars the single node fetched. The first address is the
# seed; datacenter1 (SimpleSnitch). Clients log in as on the single node (same password file).

RING_ADDRESSES="${HOURGLASS_RING_ADDRESSES:-127.0.0.2,127.0.0.3,127.0.0.4}"
RING_PORT="${HOURGLASS_RING_PORT:-9042}"
RING_STORAGE_PORT="${HOURGLASS_RING_STORAGE_PORT:-7000}"
RING_JMX_PORT="${HOURGLASS_RING_JMX_PORT:-7201}"   # node N: this + N - 1
RING_HEAP="${HOURGLASS_RING_HEAP:-640M}"
RING_DIR="$SERVICES_DIR/ring"
IFS=, read -r -a RING_HOSTS <<<"$RING_ADDRESSES"

# Points the CASS_* settings at node $1 (1-based) of the ring.
ring_node() {
    local n=$1 count=${#RING_HOSTS[@]}
    ((n >= 1 && n <= count)) || die "ring: no node $n (nodes 1-$count: $RING_ADDRESSES)"
    CASS_HOST=${RING_HOSTS[n - 1]}
    CASS_PORT=$RING_PORT
    CASS_STORAGE_PORT=$RING_STORAGE_PORT
    CASS_JMX_PORT=$((RING_JMX_PORT + n - 1))
    CASS_HEAP=$RING_HEAP
    CASS_DIR="$RING_DIR/node$n"
    CASS_LOGDIR="$CASS_DIR/logs"
    CASS_PIDFILE="$CASS_DIR/cassandra.pid"
    CASS_SEEDS="${RING_HOSTS[0]}:$RING_STORAGE_PORT"
    # Evenly spaced Murmur3 tokens: -2^63 + (n-1) * 2^64/count (no overflow in 64-bit bash).
    CASS_TOKEN=$((-9223372036854775807 - 1 + (n - 1) * (9223372036854775807 / count) * 2))
    CASS_AUTO_BOOTSTRAP=false
    CASS_HINTS=true
    CASS_DYNAMIC_SNITCH=true
    # Not the single node's 0: a joining node's first gossip round with the seed may take that
    # long on a busy box ("Unable to gossip with any peers" otherwise).
    CASS_EXTRA_OPTS=(-Dcassandra.ring_delay_ms=15000)
}

# Launches node $1 unless it answers CQL or is already starting.
ring_launch() {
    local pid
    ring_node "$1"
    if cql_ping >/dev/null; then
        log "ring: node $1 already answering CQL on $CASS_HOST:$CASS_PORT"
    elif pid=$(live_pid "$CASS_PIDFILE" CassandraDaemon); then
        log "ring: node $1 (pid $pid) is already starting"
    else
        cassandra_launch
        log "ring: node $1 started, pid $(<"$CASS_PIDFILE"), $CASS_HOST (logs in ${CASS_LOGDIR#"$ROOT"/})"
    fi
}

# Waits until node $1 answers CQL (a refused login counts: its roles come later).
ring_wait_cql() {
    local pid rc=0 started=$SECONDS
    ring_node "$1"
    pid=$(live_pid "$CASS_PIDFILE" CassandraDaemon) || pid=""
    "$PY" scripts/wait_cql.py --host "$CASS_HOST" --port "$CASS_PORT" --timeout "$CASS_TIMEOUT" \
        ${pid:+--pid "$pid"} --password-file "$CASS_PASSWORD_FILE" >/dev/null || rc=$?
    if ((rc == 2)) && [[ ${2:-} != again ]]; then
        # It exited during start-up (on a busy box: no gossip with the seed in time): once more.
        log "ring: node $1 exited during start-up; starting it once more"
        cassandra_launch
        ring_wait_cql "$1" again
        return
    fi
    if ((rc != 0)); then
        cassandra_show_logs
        die "ring: node $1 ($CASS_HOST) did not answer CQL (see above)"
    fi
    log "ring: node $1 answering CQL on $CASS_HOST:$CASS_PORT after $((SECONDS - started))s"
}

# Waits until nodetool (through node 1, never the one killed) shows nodes $@ (default: all)
# Up and Normal.
ring_wait_un() {
    local i n want=("$@") up status
    ((${#want[@]})) || want=($(seq 1 ${#RING_HOSTS[@]}))
    for ((i = 0; i < CASS_TIMEOUT / 2; i++)); do
        status=$(ring_nodetool 1 status 2>/dev/null) || status=""
        up=0
        for n in "${want[@]}"; do
            grep -q "^UN  *${RING_HOSTS[n - 1]//./\\.} " <<<"$status" && up=$((up + 1))
        done
        if ((up == ${#want[@]})); then
            log "ring: node(s) ${want[*]} UN"
            return 0
        fi
        sleep 2
    done
    ring_nodetool 1 status >&2 || true
    die "ring: $up of nodes ${want[*]} UN after ${CASS_TIMEOUT}s"
}

# nodetool against node $1's JMX: ring_nodetool N ARGS...
ring_nodetool() {
    ring_node "$1"
    shift
    cassandra_nodetool "$@"
}

# Starts the ring (or the nodes named: `ring start 2 3`), waits until every node is UN, and
# makes the logins once: system_auth replicated to every node first, so a lost node loses no role.
ring_start() {
    local n nodes=("$@")
    ((${#nodes[@]})) || nodes=($(seq 1 ${#RING_HOSTS[@]}))
    [[ -f $CASS_LIB/.complete ]] || cassandra_fetch
    mkdir -p "$RING_DIR"
    # The seed first: the others learn the ring from it.
    if [[ " ${nodes[*]} " == *" 1 "* ]]; then
        ring_launch 1
        ring_wait_cql 1
    fi
    for n in "${nodes[@]}"; do [[ $n == 1 ]] || ring_launch "$n"; done
    for n in "${nodes[@]}"; do [[ $n == 1 ]] || ring_wait_cql "$n"; done
    ring_wait_un "${nodes[@]}"
    ring_node 1
    CASS_DIR=$RING_DIR   # the superuser's password file: one for the ring
    CASS_ROLES_ARGS=(--auth-replication "datacenter1:${#RING_HOSTS[@]}")
    cassandra_roles
    log "ring: role hourglass logs in; store URL cassandra://hourglass@$RING_ADDRESSES:$RING_PORT/KEYSPACE?password_file=$CASS_PASSWORD_FILE"
}

# Replaces node $1 (down) by a new one with an empty disk at the same address: its data is
# wiped, and it streams its ranges from the others (replace_address_first_boot).
ring_replace() {
    local pid
    ring_node "$1"
    if pid=$(live_pid "$CASS_PIDFILE" CassandraDaemon); then
        die "ring: node $1 is running (pid $pid); stop or kill it first"
    fi
    rm -rf "$CASS_DIR"/{data,commitlog,saved_caches,hints}
    CASS_AUTO_BOOTSTRAP=true
    CASS_EXTRA_OPTS+=("-Dcassandra.replace_address_first_boot=$CASS_HOST")
    cassandra_launch
    log "ring: node $1 replacing itself with an empty disk, pid $(<"$CASS_PIDFILE")"
    ring_wait_cql "$1" again   # no second launch: it would not be a replacement
    ring_wait_un "$1"
}

ring_stop() {
    local n nodes=("$@")
    ((${#nodes[@]})) || nodes=($(seq 1 ${#RING_HOSTS[@]}))
    for n in "${nodes[@]}"; do
        ring_node "$n"
        if pid=$(live_pid "$CASS_PIDFILE" CassandraDaemon); then
            log "ring: stopping node $n (pid $pid)"
            terminate "$pid" 60
        fi
        rm -f "$CASS_PIDFILE"
    done
}

ring_status() {
    local n
    for n in $(seq 1 ${#RING_HOSTS[@]}); do
        ring_node "$n"
        printf 'node %s ' "$n"
        cassandra_status
    done
}

ring_cmd() {
    local action=${1:-start}
    shift || true
    PY=$(pick_python)
    case $action in
        start)
            # The ring's own lock: the shared one guards the single node, whose users must not
            # wait minutes for a ring to start.
            SERVICES_LOCK="$RING_DIR/.lock" take_lock
            ring_start "$@"
            ;;
        stop) ring_stop "$@" ;;
        status) ring_status ;;
        replace) SERVICES_LOCK="$RING_DIR/.lock" take_lock; ring_replace "${1:?node number}" ;;
        nodetool) ring_nodetool "${1:?node number}" "${@:2}" ;;
        *)
            echo "usage: $0 ring [start [N...]|stop [N...]|status|replace N|nodetool N ARGS...]" >&2
            exit 2
            ;;
    esac
}

# --------------------------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------------------------

# One metadata round trip (no retries); prints the cluster id on success.
kafka_ping() {
    "$KPY" scripts/wait_kafka.py --bootstrap "127.0.0.1:$KAFKA_PORT" --timeout 0 2>/dev/null
}

kafka_fetch() {
    maven_fetch kafka "$KAFKA_SRC/pom.xml" kafka_2.13 "$KAFKA_LIB" kafka.version "$KAFKA_VERSION"
}

# The JVM options of bin/kafka-run-class.sh that matter here: a small heap, G1 with short
# pauses, headless; the log4j2 configuration and its folder.
kafka_jvm_opts() {
    printf '%s\n' "-Xms128m" "-Xmx$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        "-Dlog4j2.configurationFile=file://$KAFKA_SRC/log4j2.yaml" "-Dkafka.logs.dir=$KAFKA_LOGDIR"
}

# Renders server.properties; formats the storage once, as a standalone KRaft controller (the
# data folder's meta.properties says it is done: formatting twice would be refused).
kafka_prepare() {
    mkdir -p "$KAFKA_DIR/conf" "$KAFKA_DIR/data" "$KAFKA_LOGDIR"
    sed -e "s|@PORT@|$KAFKA_PORT|g" \
        -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@DATA_DIR@|$KAFKA_DIR/data|g" \
        "$KAFKA_SRC/server.properties" >"$KAFKA_DIR/conf/server.properties"
    [[ -f $KAFKA_DIR/data/meta.properties ]] && return 0
    local opts cluster_id
    mapfile -t opts < <(kafka_jvm_opts)
    cluster_id=$("$JAVA" "${opts[@]}" -cp "$KAFKA_LIB/*" kafka.tools.StorageTool random-uuid) \
        || die "kafka: could not make a cluster id"
    log "kafka: formatting storage in ${KAFKA_DIR#"$ROOT"/}/data (cluster $cluster_id)"
    "$JAVA" "${opts[@]}" -cp "$KAFKA_LIB/*" kafka.tools.StorageTool format --standalone \
        -t "$cluster_id" -c "$KAFKA_DIR/conf/server.properties" >"$KAFKA_LOGDIR/format.log" 2>&1 \
        || { cat "$KAFKA_LOGDIR/format.log" >&2; die "kafka: formatting the storage failed"; }
}

kafka_launch() {
    [[ -x $JAVA ]] || die "$JAVA not found: Kafka 4 needs Java 17 or newer (apt-get install openjdk-17-jdk-headless)"
    kafka_prepare
    local opts
    mapfile -t opts < <(kafka_jvm_opts)
    # setsid: own session, as for Cassandra (a Ctrl-C in make does not stop the broker).
    setsid nohup "$JAVA" "${opts[@]}" -cp "$KAFKA_LIB/*" kafka.Kafka "$KAFKA_DIR/conf/server.properties" \
        </dev/null >"$KAFKA_LOGDIR/output.log" 2>&1 9>&- &
    echo $! >"$KAFKA_PIDFILE"
}

kafka_start() {
    local id pid started=$SECONDS
    KPY=$(pick_python confluent_kafka confluent-kafka)
    if id=$(kafka_ping); then
        log "kafka: reusing the broker already answering on 127.0.0.1:$KAFKA_PORT (cluster $id)"
        return 0
    fi
    if pid=$(live_pid "$KAFKA_PIDFILE" kafka.Kafka); then
        log "kafka: pid $pid is already starting; waiting for it"
    else
        kafka_fetch
        kafka_launch
        pid=$(<"$KAFKA_PIDFILE")
        log "kafka: started pid $pid (logs in ${KAFKA_LOGDIR#"$ROOT"/}); waiting for 127.0.0.1:$KAFKA_PORT"
    fi
    local rc=0
    id=$("$KPY" scripts/wait_kafka.py --bootstrap "127.0.0.1:$KAFKA_PORT" --timeout "$KAFKA_TIMEOUT" --pid "$pid") || rc=$?
    if ((rc == 0)); then
        log "kafka: Kafka $(<"$KAFKA_LIB/.complete") answering on 127.0.0.1:$KAFKA_PORT after $((SECONDS - started))s"
        return 0
    fi
    tail -n 30 "$KAFKA_LOGDIR/output.log" >&2 2>/dev/null || true
    tail -n 40 "$KAFKA_LOGDIR/server.log" >&2 2>/dev/null || true
    if ((rc == 2)); then
        rm -f "$KAFKA_PIDFILE"
        die "kafka exited during start-up (see above and $KAFKA_LOGDIR)"
    fi
    die "kafka (pid $pid) did not answer within ${KAFKA_TIMEOUT}s; it is left running - 'scripts/services.sh stop' kills it"
}

kafka_stop() {
    local pid
    if pid=$(live_pid "$KAFKA_PIDFILE" kafka.Kafka); then
        log "kafka: stopping pid $pid"
        terminate "$pid" 30   # SIGTERM: a controlled shutdown, logs flushed
    else
        log "kafka: not running (no live pid in ${KAFKA_PIDFILE#"$ROOT"/})"
    fi
    rm -f "$KAFKA_PIDFILE"
}

kafka_status() {
    local pid id
    if ! KPY=$(pick_python confluent_kafka confluent-kafka 2>/dev/null); then
        echo "kafka:     unknown (no python with confluent-kafka)"
    elif id=$(kafka_ping); then
        pid=$(live_pid "$KAFKA_PIDFILE" kafka.Kafka) || pid="not started by this script"
        echo "kafka:     running ($pid), cluster $id, 127.0.0.1:$KAFKA_PORT"
    elif pid=$(live_pid "$KAFKA_PIDFILE" kafka.Kafka); then
        echo "kafka:     pid $pid alive but not (yet) answering on 127.0.0.1:$KAFKA_PORT"
    else
        echo "kafka:     not running"
    fi
}

# --------------------------------------------------------------------------------------------

cmd=${1:-start}
case $cmd in
    start)
        take_lock
        PY=$(pick_python)
        redis_start
        cassandra_start
        if [[ ${HOURGLASS_KAFKA:-0} == 1 ]]; then
            kafka_start
        fi
        ;;
    kafka)
        take_lock
        kafka_start
        ;;
    stop)
        take_lock
        kafka_stop
        cassandra_stop
        redis_stop
        ;;
    status)
        PY=$(pick_python)
        redis_status
        cassandra_status
        kafka_status
        ;;
    nodetool)
        shift
        cassandra_nodetool "$@"
        ;;
    ring)
        shift
        ring_cmd "$@"
        ;;
    *)
        echo "usage: $0 [start|kafka|stop|status|nodetool ARGS...|ring ACTION...]" >&2
        exit 2
        ;;
esac
