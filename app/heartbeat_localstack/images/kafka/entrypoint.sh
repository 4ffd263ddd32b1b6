#!/bin/sh
# Start one KRaft node. Its server.properties is $KAFKA_SERVER_PROPERTIES when set (the whole
# file); else, when $KAFKA_PROCESS_ROLES is set, one setting per KAFKA_* variable, named the
# way the apache/kafka image names them (KAFKA_NODE_ID -> node.id, `__` -> `_`, `___` -> `-`),
# so manifests written for that image run this one; else a node for clients that reach it as
# localhost:9092. The storage is formatted at the first start, with $KAFKA_CLUSTER_ID (or
# $CLUSTER_ID) or a new id; later starts keep their data. $KAFKA_HEAP_OPTS, when set, replaces
# the -Xmx$KAFKA_HEAP heap option.
set -eu
config=/var/lib/kafka/server.properties
data=/var/lib/kafka/data
classpath="/opt/kafka/libs/*"
logging="-Dlog4j2.configurationFile=/opt/kafka/log4j2.properties"

if [ -n "${KAFKA_SERVER_PROPERTIES:-}" ]; then
    printf '%s\n' "$KAFKA_SERVER_PROPERTIES" > "$config"
elif [ -n "${KAFKA_PROCESS_ROLES:-}" ]; then
    : > "$config"
    # Variables that tune the JVM or this script, not the broker.
    env | grep -E '^KAFKA_[A-Z0-9_]+=' \
        | grep -vE '^KAFKA_(HEAP|HEAP_OPTS|OPTS|JVM_PERFORMANCE_OPTS|LOG4J_OPTS|CLUSTER_ID|SERVER_PROPERTIES)=' \
        | while IFS='=' read -r name value; do
            key="$(printf '%s' "${name#KAFKA_}" | tr 'A-Z' 'a-z' \
                | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g')"
            printf '%s=%s\n' "$key" "$value" >> "$config"
        done
else
    cat > "$config" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://localhost:9092
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPERTIES
fi

if [ ! -f "$data/meta.properties" ]; then
    cluster_id="${KAFKA_CLUSTER_ID:-${CLUSTER_ID:-}}"
    if [ -z "$cluster_id" ]; then
        cluster_id="$(java -cp "$classpath" kafka.tools.StorageTool random-uuid)"
    fi
    java $logging -cp "$classpath" kafka.tools.StorageTool format \
        --cluster-id "$cluster_id" --config "$config" --ignore-formatted
fi

# shellcheck disable=SC2086 # the heap options are several words
exec java ${KAFKA_HEAP_OPTS:-"-Xmx$KAFKA_HEAP"} -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true $logging -cp "$classpath" kafka.Kafka "$config"
