{{/*
Names. `helm install keepvip` gives the prefix "keepvip", so the objects are
keepvip-operator, keepvip-speaker, keepvip-webhook: the operator settings' defaults.
*/}}
{{- define "keepvip.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keepvip.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "keepvip.operatorName" -}}{{ include "keepvip.fullname" . }}-operator{{- end -}}
{{- define "keepvip.speakerName" -}}{{ include "keepvip.fullname" . }}-speaker{{- end -}}
{{- define "keepvip.webhookName" -}}{{ include "keepvip.fullname" . }}-webhook{{- end -}}
{{- define "keepvip.settingsName" -}}{{ include "keepvip.fullname" . }}-operator-settings{{- end -}}

{{/* Labels every chart object carries. */}}
{{- define "keepvip.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "keepvip.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component (operator, speaker). */}}
{{- define "keepvip.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keepvip.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The one image both the operator and the speakers run. */}}
{{- define "keepvip.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Where the operator reads its settings (ConfigMap key operator.yaml). */}}
{{- define "keepvip.settingsDir" -}}/etc/keepvip{{- end -}}
{{- define "keepvip.webhookCertDir" -}}/etc/keepvip/webhook-tls{{- end -}}

{{/*
kopf peering among operator replicas: "true" when on (several replicas, or asked for so
that replicas can be added later with `kubectl scale`), "" when the one operator runs
standalone. The peering object is named like the release.
*/}}
{{- define "keepvip.peering" -}}
{{- if or .Values.operator.peering.enabled (gt (int .Values.operator.replicaCount) 1) -}}true{{- end -}}
{{- end -}}
{{- define "keepvip.peeringName" -}}{{ include "keepvip.fullname" . }}{{- end -}}
