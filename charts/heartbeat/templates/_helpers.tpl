{{/*
Chart name, cut to 63 characters (the limit of a DNS label).
*/}}
{{- define "heartbeat.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's resources. The release name is used alone when it already
contains the chart name. Cut to 52 characters so that "-operator" and similar suffixes
still fit in 63.
*/}}
{{- define "heartbeat.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "heartbeat.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource. Never used as a selector: helm.sh/chart and the version change
on upgrade, and selectors are immutable.
*/}}
{{- define "heartbeat.labels" -}}
helm.sh/chart: {{ include "heartbeat.chart" . }}
{{ include "heartbeat.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: heartbeat
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels that identify the release's pods; stable across upgrades.
*/}}
{{- define "heartbeat.selectorLabels" -}}
app.kubernetes.io/name: {{ include "heartbeat.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of one component: (dict "context" $ "component" "consumer").
*/}}
{{- define "heartbeat.componentLabels" -}}
{{ include "heartbeat.labels" .context }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Selector of one component's pods: (dict "context" $ "component" "consumer").
*/}}
{{- define "heartbeat.componentSelectorLabels" -}}
{{ include "heartbeat.selectorLabels" .context }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Name of the ServiceAccount of the producer, consumer and test pods.
*/}}
{{- define "heartbeat.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "heartbeat.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of the operator's ServiceAccount.
*/}}
{{- define "heartbeat.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (printf "%s-operator" (include "heartbeat.fullname" .)) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository@digest when a digest is given, else repository:tag.
*/}}
{{- define "heartbeat.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Does the chart generate its own Secret? Only when some credential is not in an existing one.
Renders "true" or nothing.
*/}}
{{- define "heartbeat.secret.needed" -}}
{{- if or (not .Values.postgresql.existingSecret) (and (hasPrefix "SASL_" .Values.kafka.securityProtocol) (not .Values.kafka.sasl.existingSecret)) }}true{{- end }}
{{- end }}

{{/*
Data of the generated Secret; shared by the Secret and the migration hook's copy of it.
*/}}
{{- define "heartbeat.secret.data" -}}
{{- if not .Values.postgresql.existingSecret }}
{{- if .Values.postgresql.url }}
database-url: {{ .Values.postgresql.url | b64enc | quote }}
{{- else }}
postgres-password: {{ .Values.postgresql.password | b64enc | quote }}
{{- end }}
{{- end }}
{{- if and (hasPrefix "SASL_" .Values.kafka.securityProtocol) (not .Values.kafka.sasl.existingSecret) }}
kafka-sasl-password: {{ .Values.kafka.sasl.password | b64enc | quote }}
{{- end }}
{{- end }}

{{/*
Environment of the Kafka clients (producer, consumer, operator).
*/}}
{{- define "heartbeat.env.kafka" -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: KAFKA_TOPIC
  value: {{ .Values.kafka.topic | quote }}
- name: KAFKA_DLQ_TOPIC
  value: {{ .Values.kafka.dlqTopic | quote }}
- name: KAFKA_TOPIC_PARTITIONS
  value: {{ .Values.kafka.topicPartitions | int64 | quote }}
- name: KAFKA_REPLICATION_FACTOR
  value: {{ .Values.kafka.replicationFactor | int64 | quote }}
- name: KAFKA_CONSUMER_GROUP
  value: {{ .Values.kafka.consumerGroup | quote }}
- name: KAFKA_AUTO_OFFSET_RESET
  value: {{ .Values.kafka.autoOffsetReset | quote }}
- name: KAFKA_COMPRESSION
  value: {{ .Values.kafka.compression | quote }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}
- name: KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: KAFKA_SASL_USERNAME
  value: {{ .Values.kafka.sasl.username | quote }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.existingSecret | default (include "heartbeat.fullname" .) }}
      key: {{ ternary .Values.kafka.sasl.existingSecretPasswordKey "kafka-sasl-password" (not (empty .Values.kafka.sasl.existingSecret)) }}
{{- end }}
{{- if and (hasSuffix "SSL" .Values.kafka.securityProtocol) .Values.kafka.tls.existingSecret }}
{{- with .Values.kafka.tls.caKey }}
- name: KAFKA_SSL_CA_LOCATION
  value: {{ printf "/etc/heartbeat/kafka-tls/%s" . | quote }}
{{- end }}
{{- if and .Values.kafka.tls.certificateKey .Values.kafka.tls.keyKey }}
- name: KAFKA_SSL_CERTIFICATE_LOCATION
  value: {{ printf "/etc/heartbeat/kafka-tls/%s" .Values.kafka.tls.certificateKey | quote }}
- name: KAFKA_SSL_KEY_LOCATION
  value: {{ printf "/etc/heartbeat/kafka-tls/%s" .Values.kafka.tls.keyKey | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Environment of the PostgreSQL clients (consumer, migrations, tests).
Pass (dict "context" $ "secretName" "...") to read the credentials from another Secret
than the generated one (the migration hook runs before that one exists).
*/}}
{{- define "heartbeat.env.postgresql" -}}
{{- $ := .context }}
{{- $pg := $.Values.postgresql }}
{{- $secret := $pg.existingSecret | default .secretName | default (include "heartbeat.fullname" $) }}
{{- if or $pg.url (and $pg.existingSecret $pg.existingSecretUrlKey) -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ ternary $pg.existingSecretUrlKey "database-url" (not (empty $pg.existingSecret)) }}
{{- else -}}
- name: PGHOST
  value: {{ $pg.host | quote }}
- name: PGPORT
  value: {{ $pg.port | int64 | quote }}
- name: PGDATABASE
  value: {{ $pg.database | quote }}
- name: PGUSER
  value: {{ $pg.username | quote }}
- name: PGSSLMODE
  value: {{ $pg.sslMode | quote }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ ternary $pg.existingSecretPasswordKey "postgres-password" (not (empty $pg.existingSecret)) }}
{{- end }}
- name: DATABASE_POOL_SIZE
  value: {{ $pg.poolSize | int64 | quote }}
- name: DATABASE_CONNECT_TIMEOUT_SECONDS
  value: {{ $pg.connectTimeoutSeconds | quote }}
{{- end }}

{{/*
Environment every process shares: logging, retries, the metrics server.
*/}}
{{- define "heartbeat.env.common" -}}
- name: LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
- name: RETRY_INITIAL_SECONDS
  value: {{ .Values.config.retryInitialSeconds | quote }}
- name: RETRY_MAX_SECONDS
  value: {{ .Values.config.retryMaxSeconds | quote }}
- name: METRICS_PORT
  value: {{ .Values.config.metricsPort | int64 | quote }}
- name: LIVENESS_TIMEOUT_SECONDS
  value: {{ .Values.config.livenessTimeoutSeconds | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Volumes of every pod: a writable /tmp (the root filesystem is read-only) and the Kafka
TLS files when there are any.
*/}}
{{- define "heartbeat.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if and .kafka (hasSuffix "SSL" .context.Values.kafka.securityProtocol) .context.Values.kafka.tls.existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ .context.Values.kafka.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{- define "heartbeat.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if and .kafka (hasSuffix "SSL" .context.Values.kafka.securityProtocol) .context.Values.kafka.tls.existingSecret }}
- name: kafka-tls
  mountPath: /etc/heartbeat/kafka-tls
  readOnly: true
{{- end }}
{{- end }}

{{/*
The metrics port and the /healthz and /readyz probes of a long-running container.
*/}}
{{- define "heartbeat.probes" -}}
ports:
  - name: metrics
    containerPort: {{ .Values.config.metricsPort }}
    protocol: TCP
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  {{- toYaml .Values.probes.readiness | nindent 2 }}
{{- end }}

{{/*
Checksum of the generated Secret, so that pods restart when a credential changes.
*/}}
{{- define "heartbeat.checksumAnnotation" -}}
checksum/secret: {{ include "heartbeat.secret.data" . | sha256sum }}
{{- end }}

{{/*
Refuse values that would render a broken release. Called from the consumer Deployment.
*/}}
{{- define "heartbeat.validate" -}}
{{- $partitions := int .Values.kafka.topicPartitions }}
{{- $consumer := .Values.consumer }}
{{- if gt (int $consumer.replicas) $partitions }}
{{- fail (printf "consumer.replicas (%d) is more than kafka.topicPartitions (%d): a consumer beyond one per partition would sit idle" (int $consumer.replicas) $partitions) }}
{{- end }}
{{- if and $consumer.autoscaling.enabled (gt (int $consumer.autoscaling.maxReplicas) $partitions) }}
{{- fail (printf "consumer.autoscaling.maxReplicas (%d) is more than kafka.topicPartitions (%d)" (int $consumer.autoscaling.maxReplicas) $partitions) }}
{{- end }}
{{- if and $consumer.autoscaling.enabled (gt (int $consumer.autoscaling.minReplicas) (int $consumer.autoscaling.maxReplicas)) }}
{{- fail "consumer.autoscaling.minReplicas is more than consumer.autoscaling.maxReplicas" }}
{{- end }}
{{- if and $consumer.keda.enabled (gt (int $consumer.keda.maxReplicaCount) $partitions) }}
{{- fail (printf "consumer.keda.maxReplicaCount (%d) is more than kafka.topicPartitions (%d)" (int $consumer.keda.maxReplicaCount) $partitions) }}
{{- end }}
{{- if and $consumer.keda.enabled (gt (int $consumer.keda.minReplicaCount) (int $consumer.keda.maxReplicaCount)) }}
{{- fail "consumer.keda.minReplicaCount is more than consumer.keda.maxReplicaCount" }}
{{- end }}
{{- if and $consumer.autoscaling.enabled $consumer.keda.enabled }}
{{- fail "consumer.autoscaling and consumer.keda cannot both be enabled: KEDA runs its own HorizontalPodAutoscaler" }}
{{- end }}
{{- if and (hasPrefix "SASL_" .Values.kafka.securityProtocol) (not .Values.kafka.sasl.mechanism) }}
{{- fail "kafka.sasl.mechanism is required with a SASL_* kafka.securityProtocol" }}
{{- end }}
{{- if and (hasPrefix "SASL_" .Values.kafka.securityProtocol) (not .Values.kafka.sasl.username) }}
{{- fail "kafka.sasl.username is required with a SASL_* kafka.securityProtocol" }}
{{- end }}
{{- if and .Values.postgresql.existingSecret .Values.postgresql.url }}
{{- fail "postgresql.url is not used with postgresql.existingSecret: put the URI in that Secret and name its key in postgresql.existingSecretUrlKey" }}
{{- end }}
{{- if lt (float64 .Values.config.retryMaxSeconds) (float64 .Values.config.retryInitialSeconds) }}
{{- fail "config.retryMaxSeconds must be at least config.retryInitialSeconds" }}
{{- end }}
{{- $shutdown := float64 $consumer.shutdownTimeoutSeconds }}
{{- if le (float64 $consumer.terminationGracePeriodSeconds) $shutdown }}
{{- fail (printf "consumer.terminationGracePeriodSeconds (%v) must be more than consumer.shutdownTimeoutSeconds (%v): Kubernetes would kill a stopping consumer before it is done" $consumer.terminationGracePeriodSeconds $consumer.shutdownTimeoutSeconds) }}
{{- end }}
{{- /* The longest a consumer correctly waiting for PostgreSQL may go without turning its
       loop: one retry wait (at most retryMaxSeconds plus retryInitialSeconds of jitter) and
       one attempt (a connection, then a statement). */}}
{{- $pg := .Values.postgresql }}
{{- $wait := addf .Values.config.retryMaxSeconds .Values.config.retryInitialSeconds $pg.connectTimeoutSeconds $pg.statementTimeoutSeconds }}
{{- if le (float64 .Values.config.livenessTimeoutSeconds) (float64 $wait) }}
{{- fail (printf "config.livenessTimeoutSeconds (%v) must be more than %v, the longest a consumer waiting for PostgreSQL may go without turning its loop (config.retryMaxSeconds + config.retryInitialSeconds + postgresql.connectTimeoutSeconds + postgresql.statementTimeoutSeconds): /healthz would fail and Kubernetes restart it" .Values.config.livenessTimeoutSeconds $wait) }}
{{- end }}
{{- end }}

{{/*
What the operator may do, in its namespace (Role) or everywhere (ClusterRole): exactly the
calls it makes. It runs kopf standalone (no peering resources) with scanning off (the CRD
is installed with the chart before the operator starts, and the namespaces are named), so
it lists and watches neither CRDs nor namespaces. It adds no finalizers and deletes
nothing: ownerReferences let Kubernetes delete a simulation's StatefulSet with it.
*/}}
{{- define "heartbeat.operator.rules" -}}
# HeartbeatSimulations: read and watch them; patch them for kopf's bookkeeping
# annotations (heartbeat.dev/last-handled-configuration).
- apiGroups: ["heartbeat.dev"]
  resources: ["heartbeatsimulations"]
  verbs: ["get", "list", "watch", "patch"]
# Their status: observed generation, replicas, customers, conditions (a merge patch).
- apiGroups: ["heartbeat.dev"]
  resources: ["heartbeatsimulations/status"]
  verbs: ["patch"]
# Where the OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift, for
# one), setting blockOwnerDeletion in the StatefulSet's ownerReference needs this.
- apiGroups: ["heartbeat.dev"]
  resources: ["heartbeatsimulations/finalizers"]
  verbs: ["update"]
# The generator StatefulSet each HeartbeatSimulation owns (its pods' ordinals pick
# their slices of the customers): created, read, watched, and replaced whole when it
# differs from the spec.
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "update"]
# The generator pods, read only: the status counts the customers the ready ones simulate.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# Events about what it does (Created, Updated, DriftRepaired, TooManyReplicas...).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}
