{{/* The platform policy (values `policy`) as the operator and the admission policy read it. */}}

{{/* Allowed broker image repositories as a JSON list: the chart's own broker image first. */}}
{{- define "enclave.allowedImageRepositories" -}}
{{- $repos := list .Values.broker.image.repository -}}
{{- range .Values.policy.allowedImageRepositories }}{{ if not (has . $repos) }}{{ $repos = append $repos . }}{{ end }}{{ end -}}
{{- toJson $repos -}}
{{- end -}}

{{/* ENCLAVE_POLICY: operator/policy/platform.ts parses exactly these keys. */}}
{{- define "enclave.policyJson" -}}
{{- $p := .Values.policy -}}
{{- toJson (dict "allowedImageRepositories" $p.allowedImageRepositories "tenantScheduling" $p.tenantScheduling "scheduling" $p.scheduling "ceilings" (dict "replicas" $p.ceilings.replicas "cpu" (toString $p.ceilings.cpu) "memory" (toString $p.ceilings.memory)) "deniedEgressCidrs" $p.deniedEgressCidrs "allowedEgressNamespaces" $p.allowedEgressNamespaces "stateBackend" (dict "redisImage" $p.stateBackend.redisImage)) -}}
{{- end -}}
