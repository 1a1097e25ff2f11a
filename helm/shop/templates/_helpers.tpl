{{/* Chart name, overridable. */}}
{{- define "shop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name; leaves room for the "-products-headless" suffix within 63 characters.
*/}}
{{- define "shop.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "shop.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "products"). */}}
{{- define "shop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shop.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of one component: (dict "ctx" $ "component" "products"). */}}
{{- define "shop.labels" -}}
helm.sh/chart: {{ include "shop.chart" .ctx }}
{{ include "shop.selectorLabels" . }}
app.kubernetes.io/part-of: shop
{{- if .ctx.Chart.AppVersion }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{- define "shop.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "shop.publicKeySecretName" -}}
{{- default (printf "%s-public-key" (include "shop.fullname" .)) .Values.auth.publicKey.existingSecret }}
{{- end }}

{{- define "shop.ordersTokenSecretName" -}}
{{- default (printf "%s-orders-token" (include "shop.fullname" .)) .Values.auth.ordersToken.existingSecret }}
{{- end }}

{{- define "shop.revokedTokensConfigMapName" -}}
{{- printf "%s-revoked-tokens" (include "shop.fullname" .) }}
{{- end }}

{{- define "shop.productsUrl" -}}
{{- default (printf "http://%s-products:%v" (include "shop.fullname" .) .Values.products.port) .Values.orders.productsUrl }}
{{- end }}

{{/*
Checksum of one auth Secret's content, so that changing it rolls the pods that read it (the
services read their key and token files only at start). A Secret this chart creates is hashed
from its values; an existing one is looked up in the cluster at install/upgrade time (offline
renders such as `helm template` see nothing and hash an empty value).
Call with (list $ secretName secretValues).
*/}}
{{- define "shop.secretChecksum" -}}
{{- $ctx := index . 0 }}
{{- $name := index . 1 }}
{{- $cfg := index . 2 }}
{{- if $cfg.create }}
{{- printf "%s=%s" $cfg.key $cfg.value | sha256sum }}
{{- else }}
{{- (lookup "v1" "Secret" $ctx.Release.Namespace $name).data | toJson | sha256sum }}
{{- end }}
{{- end }}

{{/* The probes on the health endpoints, against the container port named "http". */}}
{{- define "shop.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .Values.probes.startup.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.startup.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.startup.failureThreshold }}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
{{- end }}

{{/* SHOP_* settings both services share. */}}
{{- define "shop.commonEnv" -}}
- name: SHOP_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: SHOP_DURABILITY
  value: {{ .Values.durability | quote }}
- name: SHOP_FEED_HISTORY_HOURS
  value: {{ .Values.feedHistory.hours | quote }}
- name: SHOP_FEED_HISTORY_MB
  value: {{ .Values.feedHistory.mb | quote }}
- name: SHOP_MEMORY
  value: {{ .Values.storage.memory | quote }}
- name: SHOP_CACHE_MB
  value: {{ .Values.storage.cacheMb | quote }}
{{- end }}

{{/* Per-service SHOP_* settings: (dict "svc" .Values.products). */}}
{{- define "shop.serviceEnv" -}}
{{- if not (kindIs "invalid" .svc.workers) }}
- name: SHOP_WORKERS
  value: {{ .svc.workers | quote }}
{{- end }}
{{- if not (kindIs "invalid" .svc.bodyLimit) }}
- name: SHOP_BODY_LIMIT
  value: {{ .svc.bodyLimit | int64 | quote }}
{{- end }}
{{- if not (kindIs "invalid" .svc.reservationTtl) }}
- name: SHOP_RESERVATION_TTL
  value: {{ .svc.reservationTtl | quote }}
{{- end }}
{{- with .svc.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod scheduling settings of one service: (dict "svc" .Values.products). */}}
{{- define "shop.scheduling" -}}
{{- with .svc.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .svc.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .svc.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The data volume of one service: (dict "svc" .Values.products). */}}
{{- define "shop.volumeClaimTemplate" -}}
- apiVersion: v1
  kind: PersistentVolumeClaim
  metadata:
    name: data
    {{- with .svc.persistence.annotations }}
    annotations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
  spec:
    accessModes:
      {{- toYaml .svc.persistence.accessModes | nindent 6 }}
    {{- with .svc.persistence.storageClassName }}
    storageClassName: {{ . | quote }}
    {{- end }}
    resources:
      requests:
        storage: {{ .svc.persistence.size | quote }}
{{- end }}
