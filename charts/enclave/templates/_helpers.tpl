{{/* Names, labels and image references shared by every template. */}}

{{- define "enclave.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "enclave.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "enclave.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "enclave.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "enclave.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository@digest, or repository:tag (tag defaults to the chart's appVersion). */}}
{{- define "enclave.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "enclave.operatorImage" -}}
{{- include "enclave.image" (dict "image" .Values.operator.image "appVersion" .Chart.AppVersion) -}}
{{- end -}}

{{- define "enclave.brokerImage" -}}
{{- include "enclave.image" (dict "image" .Values.broker.image "appVersion" .Chart.AppVersion) -}}
{{- end -}}

{{- define "enclave.leaseName" -}}
enclave-operator-leader
{{- end -}}
