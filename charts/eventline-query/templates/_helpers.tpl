{{/* Chart name, overridable. */}}
{{- define "eventline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name: RELEASE-CHART, or RELEASE when it already contains the chart name. */}}
{{- define "eventline.fullname" -}}
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

{{- define "eventline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "eventline.labels" -}}
helm.sh/chart: {{ include "eventline.chart" . }}
{{ include "eventline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: eventline
{{- end }}

{{/* Selector labels shared by every component of the release (a component label is added per workload). */}}
{{- define "eventline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eventline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "eventline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "eventline.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* image: REPOSITORY:TAG, the tag defaulting to the chart's appVersion. */}}
{{- define "eventline.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Pod security context: non-root, seccomp RuntimeDefault (ids from values, never 0: the schema says so). */}}
{{- define "eventline.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container security context: not configurable on purpose. */}}
{{- define "eventline.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* An env var read from an existing Secret: (list NAME SECRETREF) with SECRETREF {existingSecret, key}. */}}
{{- define "eventline.secretEnv" -}}
{{- $name := index . 0 }}
{{- $ref := index . 1 -}}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.existingSecret }}
      key: {{ $ref.key }}
{{- end }}

{{/* Scheduling fields shared by the pods of a component: (dict "values" V). */}}
{{- define "eventline.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Where a jwksFile ConfigMap key is mounted (read-only) and what EVENTLINE_JWT_JWKS_FILE says. */}}
{{- define "eventline.auth.jwksDir" -}}/etc/eventline/jwks{{- end }}

{{/*
Refuses auth values the service would refuse at startup, naming the missing value: with
auth.mode jwt, an issuer, an audience and at least one key source.
*/}}
{{- define "eventline.auth.validate" -}}
{{- $a := .Values.auth }}
{{- if eq $a.mode "jwt" }}
{{- if not $a.issuer }}
{{- fail "auth.issuer is required with auth.mode=jwt (EVENTLINE_JWT_ISSUER: the exact `iss` of your tokens); auth.mode=none turns authentication off" }}
{{- end }}
{{- if not $a.audience }}
{{- fail "auth.audience is required with auth.mode=jwt (EVENTLINE_JWT_AUDIENCE: an `aud` your tokens carry)" }}
{{- end }}
{{- if not (or $a.jwksUrl $a.jwksFile.existingConfigMap $a.hs256.existingSecret) }}
{{- fail "auth.mode=jwt needs a key source: set auth.jwksUrl, auth.jwksFile.existingConfigMap or auth.hs256.existingSecret" }}
{{- end }}
{{- end }}
{{- end }}

{{/* ConfigMap entries for authentication (none of them secret). */}}
{{- define "eventline.auth.config" -}}
{{- $a := .Values.auth -}}
EVENTLINE_AUTH: {{ $a.mode | quote }}
{{- if eq $a.mode "jwt" }}
EVENTLINE_JWT_ISSUER: {{ $a.issuer | quote }}
EVENTLINE_JWT_AUDIENCE: {{ $a.audience | quote }}
{{- with $a.jwksUrl }}
EVENTLINE_JWT_JWKS_URL: {{ . | quote }}
{{- end }}
{{- if $a.jwksFile.existingConfigMap }}
EVENTLINE_JWT_JWKS_FILE: "{{ include "eventline.auth.jwksDir" . }}/jwks.json"
{{- end }}
EVENTLINE_JWT_READ_SCOPE: {{ $a.readScope | quote }}
{{- if hasKey $a "writeScope" }}
EVENTLINE_JWT_WRITE_SCOPE: {{ $a.writeScope | quote }}
{{- end }}
EVENTLINE_JWT_LEEWAY_SECONDS: {{ $a.leewaySeconds | quote }}
{{- end }}
{{- end }}

{{/* The HS256 shared secret, only ever as a secretKeyRef. */}}
{{- define "eventline.auth.env" -}}
{{- $a := .Values.auth -}}
{{- if and (eq $a.mode "jwt") $a.hs256.existingSecret -}}
{{- include "eventline.secretEnv" (list "EVENTLINE_JWT_HS256_SECRET" $a.hs256) -}}
{{- end -}}
{{- end }}

{{/* The jwksFile ConfigMap key: a volumeMount (read-only) and its volume. */}}
{{- define "eventline.auth.volumeMounts" -}}
{{- if and (eq .Values.auth.mode "jwt") .Values.auth.jwksFile.existingConfigMap -}}
- name: jwks
  mountPath: {{ include "eventline.auth.jwksDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "eventline.auth.volumes" -}}
{{- with .Values.auth.jwksFile -}}
{{- if and (eq $.Values.auth.mode "jwt") .existingConfigMap -}}
- name: jwks
  configMap:
    name: {{ .existingConfigMap }}
    items:
      - key: {{ .key }}
        path: jwks.json
{{- end }}
{{- end }}
{{- end }}
