{{/* Names ---------------------------------------------------------------------------------------------------- */}}

{{- define "fa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name prefix; components append -triton, -control-plane, -redis (kept under 63 characters). */}}
{{- define "fa.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "fa.triton.fullname" -}}{{ include "fa.fullname" . }}-triton{{- end -}}
{{- define "fa.triton.grpcServiceName" -}}{{ include "fa.fullname" . }}-triton-grpc{{- end -}}
{{- define "fa.controlPlane.fullname" -}}{{ include "fa.fullname" . }}-control-plane{{- end -}}
{{- define "fa.redis.fullname" -}}{{ include "fa.fullname" . }}-redis{{- end -}}
{{- define "fa.secretName" -}}{{ include "fa.fullname" . }}{{- end -}}

{{- define "fa.controlPlane.serviceAccountName" -}}
{{- if .Values.controlPlane.serviceAccount.create -}}
{{- default (include "fa.controlPlane.fullname" .) .Values.controlPlane.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.controlPlane.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels --------------------------------------------------------------------------------------------------- */}}

{{- define "fa.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fa.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fa.labels" -}}
helm.sh/chart: {{ include "fa.chart" . }}
{{ include "fa.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: face-analysis
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Per component: (dict "root" $ "component" "triton") */}}
{{- define "fa.componentSelectorLabels" -}}
{{ include "fa.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "fa.componentLabels" -}}
{{ include "fa.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Images --------------------------------------------------------------------------------------------------- */}}

{{- define "fa.image" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion -}}
{{- printf "%s:%s" .image.repository (toString $tag) -}}
{{- end -}}

{{/* Triton --------------------------------------------------------------------------------------------------- */}}

{{- define "fa.triton.isGpu" -}}
{{- if eq .Values.triton.target "gpu" }}true{{ end -}}
{{- end -}}

{{/* Resources with the GPU limit on the gpu target, without it on the cpu target. (dict "root" $ "resources" map) */}}
{{- define "fa.triton.resources" -}}
{{- $t := .root.Values.triton -}}
{{- $resources := deepCopy (.resources | default dict) -}}
{{- if include "fa.triton.isGpu" .root -}}
{{- $limits := get $resources "limits" | default dict -}}
{{- $_ := set $limits $t.gpu.resourceName (int $t.gpu.count) -}}
{{- $_ := set $resources "limits" $limits -}}
{{- else -}}
{{- range $section := list "limits" "requests" -}}
{{- if hasKey $resources $section }}{{ $_ := unset (get $resources $section) $t.gpu.resourceName }}{{ end -}}
{{- end -}}
{{- end -}}
{{- toJson $resources -}}
{{- end -}}

{{/* Where the repository is: a folder inside the build emptyDir (the build replaces its output folder, which cannot
     be a mount point), or the root of the existing repository claim. */}}
{{- define "fa.triton.repositoryPath" -}}
{{- if .Values.triton.models.existingRepositoryClaim }}/models/repository{{ else }}/models/build/repository{{ end -}}
{{- end -}}

{{/* The environment docker/triton-entrypoint.sh reads (both the build and the serve containers). */}}
{{- define "fa.triton.env" -}}
{{- $t := .Values.triton -}}
- name: FACE_ANALYSIS_TARGET
  value: {{ $t.target | quote }}
- name: FACE_ANALYSIS_PACK
  value: {{ $t.models.pack | quote }}
- name: FACE_ANALYSIS_MODELS_DIR
  value: /models/packs
{{- with $t.models.packDir }}
- name: FACE_ANALYSIS_PACK_DIR
  value: {{ printf "/models/packs/%s" (trimPrefix "/" .) | quote }}
{{- end }}
- name: FACE_ANALYSIS_REPOSITORY
  value: {{ include "fa.triton.repositoryPath" . | quote }}
- name: FACE_ANALYSIS_MAX_FACES
  value: {{ $t.models.maxFaces | int | quote }}
- name: FACE_ANALYSIS_CPU_THREADS
  value: {{ $t.models.cpuThreads | toString | quote }}
- name: ENGINE_CACHE_ROOT
  value: {{ $t.engineCache.path | quote }}
- name: TRITON_HTTP_PORT
  value: "8000"
- name: TRITON_GRPC_PORT
  value: "8001"
- name: TRITON_METRICS_PORT
  value: "8002"
{{- end -}}

{{- define "fa.triton.grpcAddress" -}}
{{- printf "%s:%d" (include "fa.triton.fullname" .) (int .Values.triton.service.ports.grpc) -}}
{{- end -}}

{{/* The control plane's target: every Triton pod's address from the headless Service, so its round-robin gRPC
     channel spreads calls over all pods (a ClusterIP balances connections, and a channel is one connection). */}}
{{- define "fa.triton.balancedGrpcAddress" -}}
{{- printf "dns:///%s-headless.%s.svc:%d" (include "fa.triton.fullname" .) .Release.Namespace (int .Values.triton.service.ports.grpc) -}}
{{- end -}}

{{/* Replicas a workload keeps at least (for PDBs): HPA minReplicas when it autoscales, else replicas. */}}
{{- define "fa.minReplicas" -}}
{{- if .autoscaling.enabled -}}{{ int .autoscaling.minReplicas }}{{- else -}}{{ int .replicas }}{{- end -}}
{{- end -}}

{{/* Control plane -------------------------------------------------------------------------------------------- */}}

{{/* FACE_API_* settings from controlPlane.settings: names normalised, maps/lists/numbers/bools as JSON. */}}
{{- define "fa.controlPlane.settings" -}}
{{- $out := dict -}}
{{- $refused := list "FACE_API_ADMIN_TOKEN" "FACE_API_CACHE_ENCRYPTION_KEY" "FACE_API_REDIS_URL" -}}
{{- $chartOwned := list "FACE_API_HOST" "FACE_API_PORT" -}}
{{- $_ := set $out "FACE_API_TRITON_URL" (include "fa.triton.balancedGrpcAddress" .) -}}
{{- range $k, $v := .Values.controlPlane.settings -}}
{{- $key := upper $k -}}
{{- if not (hasPrefix "FACE_API_" $key) -}}{{- $key = printf "FACE_API_%s" $key -}}{{- end -}}
{{- if has $key $refused -}}
{{- fail (printf "controlPlane.settings.%s is a secret: it comes from the chart's Secret (controlPlane.secret, controlPlane.existingSecret, redis.*), never from the ConfigMap" $k) -}}
{{- end -}}
{{- if has $key $chartOwned -}}
{{- fail (printf "controlPlane.settings.%s is set by the chart (controlPlane.containerPort)" $k) -}}
{{- end -}}
{{- if kindIs "string" $v -}}
{{- $_ := set $out $key $v -}}
{{- else if kindIs "invalid" $v -}}
{{- $_ := unset $out $key -}}
{{- else -}}
{{- $_ := set $out $key (toJson $v) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $out "FACE_API_HOST" "0.0.0.0" -}}
{{- $_ := set $out "FACE_API_PORT" (toString (int .Values.controlPlane.containerPort)) -}}
{{- toYaml $out -}}
{{- end -}}

{{/* Secrets -------------------------------------------------------------------------------------------------- */}}

{{/* The chart's Secret's current data (empty on install or without a cluster). */}}
{{- define "fa.existingSecretData" -}}
{{- $s := lookup "v1" "Secret" .Release.Namespace (include "fa.secretName" .) -}}
{{- toJson (dig "data" (dict) ($s | default dict)) -}}
{{- end -}}

{{/* A secret value: the value given, else the one stored in the Secret, else a random one. (dict "root" $ "key" "admin-token" "value" "...") */}}
{{- define "fa.secretValue" -}}
{{- $stored := include "fa.existingSecretData" .root | fromJson -}}
{{- if .value -}}
{{- .value -}}
{{- else if hasKey $stored .key -}}
{{- index $stored .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 48 -}}
{{- end -}}
{{- end -}}

{{- define "fa.redis.enabledOrFail" -}}
{{- if and (not .Values.redis.enabled) (not .Values.redis.external.url) (not .Values.redis.external.existingSecret) -}}
{{- fail "Redis is required (keys, limits and the cache are shared by the control-plane replicas): set redis.enabled=true, redis.external.url or redis.external.existingSecret" -}}
{{- end -}}
{{- end -}}

{{/* Where FACE_API_REDIS_URL comes from: (list secretName key). */}}
{{- define "fa.redis.urlSecretRef" -}}
{{- if and (not .Values.redis.enabled) .Values.redis.external.existingSecret -}}
{{- list .Values.redis.external.existingSecret .Values.redis.external.existingSecretKey | toJson -}}
{{- else -}}
{{- list (include "fa.secretName" .) "redis-url" | toJson -}}
{{- end -}}
{{- end -}}

{{/* Whether the chart's Secret carries anything. */}}
{{- define "fa.secret.needed" -}}
{{- if or (not .Values.controlPlane.existingSecret) .Values.redis.enabled (and .Values.redis.external.url (not .Values.redis.external.existingSecret)) -}}true{{- end -}}
{{- end -}}

{{/* Probe timings from a values map (YAML lines; empty when none is set). */}}
{{- define "fa.probeTimings" -}}
{{- $out := dict -}}
{{- range $k := list "initialDelaySeconds" "periodSeconds" "timeoutSeconds" "failureThreshold" "successThreshold" -}}
{{- if hasKey $ $k -}}{{- $_ := set $out $k (index $ $k | int) -}}{{- end -}}
{{- end -}}
{{- if $out }}{{ toYaml $out }}{{ end -}}
{{- end -}}
