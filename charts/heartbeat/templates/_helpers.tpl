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
Secret and key of the Kafka SASL password: the existing Secret, or the chart's own.
*/}}
{{- define "heartbeat.kafka.saslSecretName" -}}
{{- .Values.kafka.sasl.existingSecret | default (include "heartbeat.fullname" .) }}
{{- end }}

{{- define "heartbeat.kafka.saslSecretKey" -}}
{{- ternary .Values.kafka.sasl.existingSecretPasswordKey "kafka-sasl-password" (not (empty .Values.kafka.sasl.existingSecret)) }}
{{- end }}

{{/*
Where the TLS files of Kafka and PostgreSQL are mounted; each file keeps the name of its
key in the Secret or ConfigMap it comes from.
*/}}
{{- define "heartbeat.kafka.tlsDir" -}}/etc/heartbeat/kafka-tls{{- end }}
{{- define "heartbeat.postgresql.tlsDir" -}}/etc/heartbeat/postgresql-tls{{- end }}

{{/*
Are there Kafka TLS files to mount (an SSL protocol and a CA or client certificate given)?
Renders "true" or nothing.
*/}}
{{- define "heartbeat.kafka.tlsFiles" -}}
{{- $tls := .Values.kafka.tls }}
{{- if and (hasSuffix "SSL" .Values.kafka.securityProtocol) (or $tls.caSecret $tls.caConfigMap $tls.clientCertSecret) }}true{{- end }}
{{- end }}

{{/*
The one Secret holding every Kafka TLS file, which the operator's generator pods mount
whole (OPERATOR_KAFKA_TLS_SECRET); nothing when the files come from a ConfigMap or from
two Secrets.
*/}}
{{- define "heartbeat.operator.kafkaTlsSecret" -}}
{{- $tls := .Values.kafka.tls }}
{{- if and (include "heartbeat.kafka.tlsFiles" .) (not $tls.caConfigMap) (or (not $tls.caSecret) (not $tls.clientCertSecret) (eq $tls.caSecret $tls.clientCertSecret)) }}
{{- $tls.caSecret | default $tls.clientCertSecret }}
{{- end }}
{{- end }}

{{/*
Are there PostgreSQL TLS files to mount? Renders "true" or nothing.
*/}}
{{- define "heartbeat.postgresql.tlsFiles" -}}
{{- $tls := .Values.postgresql.tls }}
{{- if or $tls.caSecret $tls.caConfigMap $tls.clientCertSecret }}true{{- end }}
{{- end }}

{{/*
A projected volume of TLS files, read-only for the pod's user and group only:
(dict "name" "kafka-tls" "tls" .Values.kafka.tls). A CA from a Secret or a ConfigMap, a
client certificate and key from a Secret (one source when both are in the same Secret).
*/}}
{{- define "heartbeat.tlsVolume" -}}
{{- $tls := .tls }}
- name: {{ .name }}
  projected:
    defaultMode: 0440
    sources:
      {{- if and $tls.caSecret (eq $tls.caSecret $tls.clientCertSecret) }}
      - secret:
          name: {{ $tls.caSecret }}
          items:
            - {key: {{ $tls.caKey | quote }}, path: {{ $tls.caKey | quote }}}
            - {key: {{ $tls.clientCertKey | quote }}, path: {{ $tls.clientCertKey | quote }}}
            - {key: {{ $tls.clientKeyKey | quote }}, path: {{ $tls.clientKeyKey | quote }}}
      {{- else }}
      {{- if $tls.caSecret }}
      - secret:
          name: {{ $tls.caSecret }}
          items:
            - {key: {{ $tls.caKey | quote }}, path: {{ $tls.caKey | quote }}}
      {{- else if $tls.caConfigMap }}
      - configMap:
          name: {{ $tls.caConfigMap }}
          items:
            - {key: {{ $tls.caKey | quote }}, path: {{ $tls.caKey | quote }}}
      {{- end }}
      {{- if $tls.clientCertSecret }}
      - secret:
          name: {{ $tls.clientCertSecret }}
          items:
            - {key: {{ $tls.clientCertKey | quote }}, path: {{ $tls.clientCertKey | quote }}}
            - {key: {{ $tls.clientKeyKey | quote }}, path: {{ $tls.clientKeyKey | quote }}}
      {{- end }}
      {{- end }}
{{- end }}

{{/*
Environment of the Kafka clients (producer, consumer, operator).
*/}}
{{- define "heartbeat.env.kafka" -}}
{{- $kafka := .Values.kafka }}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ $kafka.bootstrapServers | quote }}
- name: KAFKA_TOPIC
  value: {{ $kafka.topic | quote }}
- name: KAFKA_DLQ_TOPIC
  value: {{ $kafka.dlqTopic | quote }}
- name: KAFKA_TOPIC_PARTITIONS
  value: {{ $kafka.topicPartitions | int64 | quote }}
- name: KAFKA_REPLICATION_FACTOR
  value: {{ $kafka.replicationFactor | int64 | quote }}
- name: KAFKA_CONSUMER_GROUP
  value: {{ $kafka.consumerGroup | quote }}
- name: KAFKA_AUTO_OFFSET_RESET
  value: {{ $kafka.autoOffsetReset | quote }}
- name: KAFKA_COMPRESSION
  value: {{ $kafka.compression | quote }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ $kafka.securityProtocol | quote }}
{{- if hasPrefix "SASL_" $kafka.securityProtocol }}
- name: KAFKA_SASL_MECHANISM
  value: {{ $kafka.sasl.mechanism | quote }}
- name: KAFKA_SASL_USERNAME
  value: {{ $kafka.sasl.username | quote }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "heartbeat.kafka.saslSecretName" . }}
      key: {{ include "heartbeat.kafka.saslSecretKey" . }}
{{- end }}
{{- if include "heartbeat.kafka.tlsFiles" . }}
{{- $dir := include "heartbeat.kafka.tlsDir" . }}
{{- if or $kafka.tls.caSecret $kafka.tls.caConfigMap }}
- name: KAFKA_SSL_CA_LOCATION
  value: {{ printf "%s/%s" $dir $kafka.tls.caKey | quote }}
{{- end }}
{{- if $kafka.tls.clientCertSecret }}
- name: KAFKA_SSL_CERTIFICATE_LOCATION
  value: {{ printf "%s/%s" $dir $kafka.tls.clientCertKey | quote }}
- name: KAFKA_SSL_KEY_LOCATION
  value: {{ printf "%s/%s" $dir $kafka.tls.clientKeyKey | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Environment of the PostgreSQL clients (consumer, migrations, maintenance, tests).
Pass (dict "context" $ "secretName" "...") to read the credentials from another Secret
than the generated one (the migration hook runs before that one exists).
libpq reads PGSSLROOTCERT, PGSSLCERT and PGSSLKEY also alongside a DATABASE_URL, for what
the URL does not say itself.
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
{{- if include "heartbeat.postgresql.tlsFiles" $ }}
{{- $dir := include "heartbeat.postgresql.tlsDir" $ }}
{{- if or $pg.tls.caSecret $pg.tls.caConfigMap }}
- name: PGSSLROOTCERT
  value: {{ printf "%s/%s" $dir $pg.tls.caKey | quote }}
{{- end }}
{{- if $pg.tls.clientCertSecret }}
- name: PGSSLCERT
  value: {{ printf "%s/%s" $dir $pg.tls.clientCertKey | quote }}
- name: PGSSLKEY
  value: {{ printf "%s/%s" $dir $pg.tls.clientKeyKey | quote }}
{{- end }}
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
Checksum of the generated Secret, so that pods restart when a credential changes.
*/}}
{{- define "heartbeat.checksumAnnotation" -}}
checksum/secret: {{ include "heartbeat.secret.data" . | sha256sum }}
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
