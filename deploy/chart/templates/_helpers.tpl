{{/* Names, labels and small computed values shared by the templates. */}}

{{- define "hexabase.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-hexabase, or the release name alone when it already contains the chart name. */}}
{{- define "hexabase.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "hexabase.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hexabase.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "hexabase.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "hexabase.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hexabase
{{- end }}

{{- define "hexabase.serviceAccountName" -}}
{{- default (include "hexabase.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* The cluster-scoped RBAC objects carry the namespace: two releases of the same name in
     different namespaces must not share (or fight over) one ClusterRole. */}}
{{- define "hexabase.clusterRoleName" -}}
{{- printf "%s-%s" .Release.Namespace (include "hexabase.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hexabase.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret and key the server's DATABASE_URL comes from. */}}
{{- define "hexabase.databaseSecretName" -}}
{{- if .Values.database.url }}
{{- printf "%s-database" (include "hexabase.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- required "database.existingSecret or database.url must be set (the server needs a PostgreSQL URL)" .Values.database.existingSecret }}
{{- end }}
{{- end }}

{{- define "hexabase.databaseSecretKey" -}}
{{- if .Values.database.url }}DATABASE_URL{{ else }}{{ required "database.existingSecretKey must be set" .Values.database.existingSecretKey }}{{ end }}
{{- end }}

{{- define "hexabase.catalogue" -}}
{{- if .Values.catalogue.content }}
{{- .Values.catalogue.content }}
{{- else }}
{{- .Files.Get "files/catalogue.yaml" }}
{{- end }}
{{- end }}

{{/* The Prometheus port the NetworkPolicy opens: networkPolicy.egress.prometheus.port, else the
     port of prometheus.url, else 80/443 by its scheme. */}}
{{- define "hexabase.prometheusPort" -}}
{{- if .Values.networkPolicy.egress.prometheus.port }}
{{- .Values.networkPolicy.egress.prometheus.port }}
{{- else }}
{{- $u := urlParse .Values.prometheus.url }}
{{- $hp := splitList ":" $u.host }}
{{- if gt (len $hp) 1 }}{{ last $hp }}{{ else if eq $u.scheme "https" }}443{{ else }}80{{ end }}
{{- end }}
{{- end }}

{{/* Fails the render on values the server cannot run with. */}}
{{- define "hexabase.validate" -}}
{{- if not (has .Values.nodeProvider (list "kwok" "karpenter")) }}
{{- fail (printf "nodeProvider must be kwok or karpenter, not %q" .Values.nodeProvider) }}
{{- end }}
{{- if eq .Values.nodeProvider "karpenter" }}
{{- $nc := .Values.karpenter.nodeClass }}
{{- if not (and $nc.group $nc.kind $nc.name) }}
{{- fail "nodeProvider=karpenter needs karpenter.nodeClass.group, .kind and .name" }}
{{- end }}
{{- end }}
{{- if and .Values.database.url (not (regexMatch "^postgres(ql)?://" .Values.database.url)) }}
{{- fail "database.url must be a postgres:// URL: replicas share one PostgreSQL (SQLite cannot live on the read-only root filesystem nor be shared)" }}
{{- end }}
{{- if not (has .Values.podAntiAffinity (list "soft" "hard" "none")) }}
{{- fail (printf "podAntiAffinity must be soft, hard or none, not %q" .Values.podAntiAffinity) }}
{{- end }}
{{- if not (has .Values.server.logFormat (list "json" "pretty")) }}
{{- fail (printf "server.logFormat must be json or pretty, not %q" .Values.server.logFormat) }}
{{- end }}
{{- end }}
