{{/*
Security context of every pod and of every container (from `podSecurityContext` and
`securityContext`).
*/}}
{{- define "heartbeat.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "heartbeat.containerSecurityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/*
The metrics port and the /healthz and /readyz probes of a long-running container (timing
from `probes`).
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
Volumes of a pod: a writable /tmp (the root filesystem is read-only), the TLS files of
Kafka and PostgreSQL for pods that talk to them, and `extraVolumes`.
Takes the same dict as "heartbeat.podSpec".
*/}}
{{- define "heartbeat.volumes" -}}
{{- $ := .context }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if and .kafka (not .noKafkaFiles) (include "heartbeat.kafka.tlsFiles" $) }}
{{ include "heartbeat.tlsVolume" (dict "name" "kafka-tls" "tls" $.Values.kafka.tls) }}
{{- end }}
{{- if and .postgresql (include "heartbeat.postgresql.tlsFiles" $) }}
{{ include "heartbeat.tlsVolume" (dict "name" "postgresql-tls" "tls" $.Values.postgresql.tls) }}
{{- end }}
{{- with $.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "heartbeat.volumeMounts" -}}
{{- $ := .context }}
- name: tmp
  mountPath: /tmp
{{- if and .kafka (not .noKafkaFiles) (include "heartbeat.kafka.tlsFiles" $) }}
- name: kafka-tls
  mountPath: {{ include "heartbeat.kafka.tlsDir" $ }}
  readOnly: true
{{- end }}
{{- if and .postgresql (include "heartbeat.postgresql.tlsFiles" $) }}
- name: postgresql-tls
  mountPath: {{ include "heartbeat.postgresql.tlsDir" $ }}
  readOnly: true
{{- end }}
{{- with $.Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
One heartbeat container (the part after its name). Takes the dict of "heartbeat.podSpec";
`resources` defaults to `.values.resources`.
*/}}
{{- define "heartbeat.container" -}}
{{- $ := .context }}
image: {{ include "heartbeat.image" $ }}
imagePullPolicy: {{ $.Values.image.pullPolicy }}
{{- with .command }}
command: {{ toJson . }}
{{- end }}
args:
  {{- toYaml .args | nindent 2 }}
env:
  {{- if .kafka }}
  {{- include "heartbeat.env.kafka" $ | nindent 2 }}
  {{- end }}
  {{- if .postgresql }}
  {{- include "heartbeat.env.postgresql" (dict "context" $ "secretName" .postgresqlSecret) | nindent 2 }}
  {{- end }}
  {{- with .env }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- include "heartbeat.env.common" $ | nindent 2 }}
  {{- with .values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with $.Values.extraEnvFrom }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .probes }}
{{ include "heartbeat.probes" $ }}
{{- end }}
resources:
  {{- toYaml (.resources | default .values.resources) | nindent 2 }}
securityContext:
  {{- include "heartbeat.containerSecurityContext" $ | nindent 2 }}
volumeMounts:
  {{- include "heartbeat.volumeMounts" . | nindent 2 }}
{{- end }}

{{/*
The pod spec every workload of the chart shares: Deployments (consumer, producer,
operator), the migration Job and the maintenance CronJob. Takes a dict:
  context             the chart's root context ($)
  component           the component's name, also its container's unless `container` is given
  values              the component's values: resources, extraEnv, nodeSelector, tolerations,
                      affinity, topologySpreadConstraints (each optional)
  args                the `heartbeat` command's arguments
  env                 the component's own variables, a rendered YAML list (optional)
  kafka, postgresql   true for a client of that service: its environment and TLS files
  noKafkaFiles        true for the Kafka environment without the files (the operator hands
                      the settings on to its generators but connects to no broker)
  postgresqlSecret    Secret of the PostgreSQL credentials when not the chart's (optional)
  probes              true for a long-running process: metrics port, /healthz, /readyz
  serviceAccountName  (optional)
  automountServiceAccountToken
  restartPolicy, terminationGracePeriodSeconds (optional)
A topology spread constraint without a labelSelector gets the component's pods' selector.
*/}}
{{- define "heartbeat.podSpec" -}}
{{- $ := .context }}
{{- $component := .component }}
{{- with .serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
automountServiceAccountToken: {{ .automountServiceAccountToken }}
{{- with .restartPolicy }}
restartPolicy: {{ . }}
{{- end }}
{{- with .terminationGracePeriodSeconds }}
terminationGracePeriodSeconds: {{ . }}
{{- end }}
{{- with $.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "heartbeat.podSecurityContext" $ | nindent 2 }}
containers:
  - name: {{ .container | default .component }}
    {{- include "heartbeat.container" . | nindent 4 }}
volumes:
  {{- include "heartbeat.volumes" . | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
{{- $selector := include "heartbeat.componentSelectorLabels" (dict "context" $ "component" $component) }}
topologySpreadConstraints:
  {{- range . }}
  {{- $constraint := deepCopy . }}
  {{- if not (hasKey $constraint "labelSelector") }}
  {{- $_ := set $constraint "labelSelector" (dict "matchLabels" (fromYaml $selector)) }}
  {{- end }}
  - {{- toYaml $constraint | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
