#!/bin/sh
# Start one KRaft node. Its server.properties is $KAFKA_SERVER_PROPERTIES when set (the whole
# file), else a node for clients that reach it as localhost:9092. The storage is formatted
# at the first start, with $KAFKA_CLUSTER_ID or a new id; later starts keep their data.
set -eu
config=/var/lib/kafka/server.properties
data=/var/lib/kafka/data
classpath="/opt/kafka/libs/*"
logging="-Dlog4j2.configurationFile=/opt/kafka/log4j2.properties"

if [ -n "${KAFKA_SERVER_PROPERTIES:-}" ]; then
    printf '%s\n' "$KAFKA_SERVER_PROPERTIES" > "$config"
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
    cluster_id="${KAFKA_CLUSTER_ID:-$(java -cp "$classpath" kafka.tools.StorageTool random-uuid)}"
    java $logging -cp "$classpath" kafka.tools.StorageTool format \
        --cluster-id "$cluster_id" --config "$config" --ignore-formatted
fi

exec java "-Xmx$KAFKA_HEAP" -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    $logging -cp "$classpath" kafka.Kafka "$config"
