#!/bin/sh
# Starts the production broker (single node, KRaft): clients authenticate with SASL/SCRAM over
# TLS on both client listeners; the controller listener is mutual TLS on the container's own
# loopback; the StandardAuthorizer denies whatever no ACL allows (ACLs: deploy/acls.py).
#
# Secrets are read from /run/secrets when the container starts and written only into a 0700
# directory inside the container; the admin password is the broker's inter-broker login and
# the credential the one-shot ACL step uses. Nothing secret is in the compose file or image.
set -eu
S=/run/secrets
CONF="$(mktemp -d /tmp/oioo-kafka.XXXXXX)"
umask 077
ADMIN_PASSWORD="$(cat "$S/kafka_admin_password")"
KEYSTORE_PASSWORD="$(cat "$S/kafka_keystore_password")"
DATA=/var/lib/kafka/data
JAAS_MODULE=org.apache.kafka.common.security.scram.ScramLoginModule

cat > "$CONF/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=INTERNAL://0.0.0.0:9092,HOST://0.0.0.0:29092,CONTROLLER://localhost:9093
advertised.listeners=INTERNAL://kafka:9092,HOST://localhost:29092
listener.security.protocol.map=INTERNAL:SASL_SSL,HOST:SASL_SSL,CONTROLLER:SSL
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER

sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.internal.scram-sha-512.sasl.jaas.config=$JAAS_MODULE required username="admin" password="$ADMIN_PASSWORD";
listener.name.host.scram-sha-512.sasl.jaas.config=$JAAS_MODULE required;

ssl.keystore.type=PKCS12
ssl.keystore.location=$S/kafka_keystore
ssl.keystore.password=$KEYSTORE_PASSWORD
ssl.key.password=$KEYSTORE_PASSWORD
ssl.truststore.type=PEM
ssl.truststore.location=$S/ca_cert
ssl.endpoint.identification.algorithm=https
ssl.enabled.protocols=TLSv1.3,TLSv1.2
listener.name.controller.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([A-Za-z0-9.-]+)$/\$1/,DEFAULT

authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:kafka

log.dirs=$DATA
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
EOF

# The healthcheck's client settings (admin over TLS to this container's own listener).
cat > /tmp/oioo-kafka-admin.properties <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$JAAS_MODULE required username="admin" password="$ADMIN_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=$S/ca_cert
EOF

if [ ! -f "$DATA/meta.properties" ]; then
  # SCRAM users live in the cluster metadata: the admin's is bootstrapped when the storage is
  # formatted, every other user's is set by the ACL step.
  /opt/kafka/bin/kafka-storage.sh format -t "$CLUSTER_ID" -c "$CONF/server.properties" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$ADMIN_PASSWORD]"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$CONF/server.properties"
