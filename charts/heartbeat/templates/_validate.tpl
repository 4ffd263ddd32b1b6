{{/*
Refuse values that would render a broken release. Included once, by validate.yaml, so the
checks run whichever components are enabled.
*/}}
{{- define "heartbeat.validate" -}}
{{- $partitions := int .Values.kafka.topicPartitions }}
{{- $consumer := .Values.consumer }}
{{- $kafka := .Values.kafka }}
{{- $pg := .Values.postgresql }}
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
{{- $pdb := $consumer.podDisruptionBudget }}
{{- if and $pdb.enabled (not (kindIs "invalid" $pdb.minAvailable)) (not (kindIs "invalid" $pdb.maxUnavailable)) }}
{{- fail "consumer.podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- if and $pdb.enabled (kindIs "invalid" $pdb.minAvailable) (kindIs "invalid" $pdb.maxUnavailable) }}
{{- fail "consumer.podDisruptionBudget: set minAvailable or maxUnavailable" }}
{{- end }}

{{- /* Kafka credentials and TLS files. */}}
{{- $sasl := hasPrefix "SASL_" $kafka.securityProtocol }}
{{- if and $sasl (not $kafka.sasl.mechanism) }}
{{- fail "kafka.sasl.mechanism is required with a SASL_* kafka.securityProtocol" }}
{{- end }}
{{- if and $sasl (not $kafka.sasl.username) }}
{{- fail "kafka.sasl.username is required with a SASL_* kafka.securityProtocol" }}
{{- end }}
{{- if and $sasl (not $kafka.sasl.existingSecret) (not $kafka.sasl.password) }}
{{- fail "kafka.sasl.existingSecret (with kafka.sasl.existingSecretPasswordKey) or kafka.sasl.password is required with a SASL_* kafka.securityProtocol" }}
{{- end }}
{{- include "heartbeat.validate.tls" (dict "prefix" "kafka.tls" "tls" $kafka.tls) }}
{{- $kafkaTls := $kafka.tls }}
{{- if and (or $kafkaTls.caSecret $kafkaTls.caConfigMap $kafkaTls.clientCertSecret) (not (hasSuffix "SSL" $kafka.securityProtocol)) }}
{{- fail (printf "kafka.tls.* is set but kafka.securityProtocol is %s: the TLS files are used only with SSL or SASL_SSL" $kafka.securityProtocol) }}
{{- end }}
{{- if and .Values.operator.enabled (include "heartbeat.kafka.tlsFiles" .) (not (include "heartbeat.operator.kafkaTlsSecret" .)) }}
{{- fail "operator.enabled: the operator's generator pods mount the Kafka TLS files from one Secret (OPERATOR_KAFKA_TLS_SECRET), so kafka.tls.caConfigMap, or a kafka.tls.caSecret other than kafka.tls.clientCertSecret, cannot reach them: put the CA and the client certificate in one Secret, or set operator.enabled=false" }}
{{- end }}

{{- /* PostgreSQL credentials and TLS files. */}}
{{- if and $pg.existingSecret $pg.url }}
{{- fail "postgresql.url is not used with postgresql.existingSecret: put the URI in that Secret and name its key in postgresql.existingSecretUrlKey" }}
{{- end }}
{{- include "heartbeat.validate.tls" (dict "prefix" "postgresql.tls" "tls" $pg.tls) }}
{{- $byUrl := or $pg.url (and $pg.existingSecret $pg.existingSecretUrlKey) }}
{{- if and (not $byUrl) (has $pg.sslMode (list "verify-ca" "verify-full")) (not (or $pg.tls.caSecret $pg.tls.caConfigMap)) }}
{{- fail (printf "postgresql.sslMode %s verifies the server against a CA: set postgresql.tls.caSecret or postgresql.tls.caConfigMap (PGSSLROOTCERT)" $pg.sslMode) }}
{{- end }}
{{- if and (not $byUrl) (eq $pg.sslMode "disable") (include "heartbeat.postgresql.tlsFiles" .) }}
{{- fail "postgresql.tls.* is set but postgresql.sslMode is disable: the TLS files would never be used" }}
{{- end }}

{{- /* Timing. */}}
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
{{- $wait := addf .Values.config.retryMaxSeconds .Values.config.retryInitialSeconds $pg.connectTimeoutSeconds $pg.statementTimeoutSeconds }}
{{- if le (float64 .Values.config.livenessTimeoutSeconds) (float64 $wait) }}
{{- fail (printf "config.livenessTimeoutSeconds (%v) must be more than %v, the longest a consumer waiting for PostgreSQL may go without turning its loop (config.retryMaxSeconds + config.retryInitialSeconds + postgresql.connectTimeoutSeconds + postgresql.statementTimeoutSeconds): /healthz would fail and Kubernetes restart it" .Values.config.livenessTimeoutSeconds $wait) }}
{{- end }}

{{- /* Storage lifecycle. */}}
{{- $m := .Values.maintenance }}
{{- if lt (int $m.rollupRetentionDays) (int $m.rawRetentionDays) }}
{{- fail (printf "maintenance.rollupRetentionDays (%d) is less than maintenance.rawRetentionDays (%d): rollups are kept at least as long as the readings they come from" (int $m.rollupRetentionDays) (int $m.rawRetentionDays)) }}
{{- end }}
{{- if lt (int $m.hourlyRollupRetentionDays) (int $m.rollupRetentionDays) }}
{{- fail (printf "maintenance.hourlyRollupRetentionDays (%d) is less than maintenance.rollupRetentionDays (%d): hourly rollups are kept at least as long as the minutes they come from" (int $m.hourlyRollupRetentionDays) (int $m.rollupRetentionDays)) }}
{{- end }}
{{- end }}

{{/*
One service's TLS values: (dict "prefix" "kafka.tls" "tls" .Values.kafka.tls).
*/}}
{{- define "heartbeat.validate.tls" -}}
{{- $tls := .tls }}
{{- if and $tls.caSecret $tls.caConfigMap }}
{{- fail (printf "%s.caSecret and %s.caConfigMap are two places for one CA: set one" .prefix .prefix) }}
{{- end }}
{{- if and $tls.clientCertSecret (eq $tls.clientCertKey $tls.clientKeyKey) }}
{{- fail (printf "%s.clientCertKey and %s.clientKeyKey are both %q: the certificate and the key are two files" .prefix .prefix $tls.clientCertKey) }}
{{- end }}
{{- if and (or $tls.caSecret $tls.caConfigMap) $tls.clientCertSecret (has $tls.caKey (list $tls.clientCertKey $tls.clientKeyKey)) }}
{{- fail (printf "%s.caKey %q is also the name of a client certificate file: the files are mounted side by side under their key names" .prefix $tls.caKey) }}
{{- end }}
{{- end }}
