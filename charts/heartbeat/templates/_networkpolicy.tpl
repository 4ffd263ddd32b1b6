{{/*
Ports of the brokers: networkPolicy.kafka.ports, or those of kafka.bootstrapServers.
Renders a YAML list.
*/}}
{{- define "heartbeat.networkPolicy.kafkaPorts" -}}
{{- $ports := .Values.networkPolicy.kafka.ports }}
{{- if not $ports }}
{{- range splitList "," .Values.kafka.bootstrapServers }}
{{- $ports = append $ports (int (last (splitList ":" (trim .)))) }}
{{- end }}
{{- end }}
{{- toYaml (uniq $ports) }}
{{- end }}

{{/*
One egress rule: (dict "ports" (list 5432) "protocols" (list "TCP") "to" (list ...)).
*/}}
{{- define "heartbeat.networkPolicy.egressRule" -}}
- ports:
    {{- range $port := .ports }}
    {{- range $.protocols }}
    - port: {{ $port }}
      protocol: {{ . }}
    {{- end }}
    {{- end }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
The NetworkPolicy of one component: (dict
  "context" $ "component" "consumer"
  "podSelector" (dict ...)   labels of its pods; default: the component's selector labels
  "metrics" true             ingress to the metrics port from networkPolicy.metricsFrom
  "fromTests" true           ingress to the metrics port from the `helm test` pod
  "kafka" true "postgresql" true "apiServer" true   egress to those services (and DNS)
  "toConsumers" true         egress to the consumers' metrics port
  "annotations" (dict ...))
Every policy lists both policy types, so what a rule does not allow is denied.
*/}}
{{- define "heartbeat.networkPolicy" -}}
{{- $ := .context }}
{{- $np := $.Values.networkPolicy }}
{{- $selector := .podSelector | default (include "heartbeat.componentSelectorLabels" (dict "context" $ "component" .component) | fromYaml) }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "heartbeat.fullname" $ }}-{{ .component }}
  labels:
    {{- include "heartbeat.componentLabels" (dict "context" $ "component" .component) | nindent 4 }}
  {{- with .annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  podSelector:
    matchLabels:
      {{- toYaml $selector | nindent 6 }}
  policyTypes:
    - Ingress
    - Egress
  {{- if or .metrics .fromTests }}
  ingress:
    {{- if .metrics }}
    - ports:
        - port: metrics
          protocol: TCP
      {{- with $np.metricsFrom }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
    {{- if .fromTests }}
    # The `helm test` pod checks the consumers' /readyz.
    - ports:
        - port: metrics
          protocol: TCP
      from:
        - podSelector:
            matchLabels:
              {{- include "heartbeat.componentSelectorLabels" (dict "context" $ "component" "test") | nindent 14 }}
    {{- end }}
  {{- else }}
  ingress: []
  {{- end }}
  egress:
    {{- include "heartbeat.networkPolicy.egressRule" (dict "ports" (list 53) "protocols" (list "UDP" "TCP") "to" $np.dns.to) | nindent 4 }}
    {{- if .kafka }}
    {{- include "heartbeat.networkPolicy.egressRule" (dict "ports" (include "heartbeat.networkPolicy.kafkaPorts" $ | fromYamlArray) "protocols" (list "TCP") "to" $np.kafka.to) | nindent 4 }}
    {{- end }}
    {{- if .postgresql }}
    {{- include "heartbeat.networkPolicy.egressRule" (dict "ports" ($np.postgresql.ports | default (list $.Values.postgresql.port)) "protocols" (list "TCP") "to" $np.postgresql.to) | nindent 4 }}
    {{- end }}
    {{- if .apiServer }}
    {{- include "heartbeat.networkPolicy.egressRule" (dict "ports" $np.apiServer.ports "protocols" (list "TCP") "to" $np.apiServer.to) | nindent 4 }}
    {{- end }}
    {{- if .toConsumers }}
    - ports:
        - port: {{ $.Values.config.metricsPort }}
          protocol: TCP
      to:
        - podSelector:
            matchLabels:
              {{- include "heartbeat.componentSelectorLabels" (dict "context" $ "component" "consumer") | nindent 14 }}
    {{- end }}
    {{- with $np.extraEgress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
