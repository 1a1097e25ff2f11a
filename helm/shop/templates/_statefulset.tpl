{{/*
The StatefulSet of one service, the same for both so that they cannot drift apart:
(dict "ctx" $ "component" "products"). Orders adds "callsProducts" true: products' URL, the
call timeout and its own token for products (a mounted Secret that rolls the pod on change).
*/}}
{{- define "shop.statefulset" -}}
{{- $ctx := .ctx -}}
{{- $component := .component -}}
{{- $svc := index $ctx.Values $component -}}
{{- $fullname := include "shop.fullname" $ctx -}}
{{- $auth := $ctx.Values.auth -}}
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ $fullname }}-{{ $component }}
  labels:
    {{- include "shop.labels" (dict "ctx" $ctx "component" $component) | nindent 4 }}
spec:
  # Single writer: the store locks its data directory. Never scale this up.
  replicas: 1
  serviceName: {{ $fullname }}-{{ $component }}-headless
  podManagementPolicy: OrderedReady
  updateStrategy:
    type: RollingUpdate
  persistentVolumeClaimRetentionPolicy:
    whenDeleted: Retain
    whenScaled: Retain
  selector:
    matchLabels:
      {{- include "shop.selectorLabels" (dict "ctx" $ctx "component" $component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "shop.labels" (dict "ctx" $ctx "component" $component) | nindent 8 }}
        {{- with $svc.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/public-key: {{ include "shop.secretChecksum" (list $ctx (include "shop.publicKeySecretName" $ctx) $auth.publicKey) }}
        {{- if .callsProducts }}
        checksum/orders-token: {{ include "shop.secretChecksum" (list $ctx (include "shop.ordersTokenSecretName" $ctx) $auth.ordersToken) }}
        {{- end }}
        checksum/revoked-tokens: {{ include (print $ctx.Template.BasePath "/configmap-revoked-tokens.yaml") $ctx | sha256sum }}
        {{- with $svc.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- with $ctx.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $svc.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $ctx.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ $component }}
          image: {{ include "shop.image" $ctx | quote }}
          imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
          command:
            - /usr/local/bin/{{ $component }}
          args:
            - --listen=0.0.0.0:{{ $svc.port }}
            - --data-dir=/data
            - --public-key-file=/etc/shop/keys/public.key
            {{- if .callsProducts }}
            - --products-url={{ include "shop.productsUrl" $ctx }}
            - --products-token-file=/etc/shop/token/products.token
            {{- end }}
            {{- if $auth.revokedTokens }}
            - --revoked-tokens-file=/etc/shop/revoked/revoked-tokens
            {{- end }}
            {{- with $svc.extraArgs }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          env:
            {{- include "shop.commonEnv" $ctx | nindent 12 }}
            {{- if .callsProducts }}
            - name: SHOP_PRODUCTS_TIMEOUT_MS
              value: {{ $svc.productsTimeoutMs | int64 | quote }}
            {{- end }}
            {{- with include "shop.serviceEnv" (dict "svc" $svc) }}
            {{- . | trim | nindent 12 }}
            {{- end }}
          ports:
            - name: http
              containerPort: {{ $svc.port }}
              protocol: TCP
          {{- include "shop.probes" $ctx | nindent 10 }}
          resources:
            {{- toYaml $svc.resources | nindent 12 }}
          securityContext:
            {{- toYaml $ctx.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: data
              mountPath: /data
            - name: public-key
              mountPath: /etc/shop/keys
              readOnly: true
            {{- if .callsProducts }}
            - name: orders-token
              mountPath: /etc/shop/token
              readOnly: true
            {{- end }}
            {{- if $auth.revokedTokens }}
            - name: revoked-tokens
              mountPath: /etc/shop/revoked
              readOnly: true
            {{- end }}
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: public-key
          secret:
            secretName: {{ include "shop.publicKeySecretName" $ctx }}
            defaultMode: 0440
            items:
              - key: {{ $auth.publicKey.key | quote }}
                path: public.key
        {{- if .callsProducts }}
        - name: orders-token
          secret:
            secretName: {{ include "shop.ordersTokenSecretName" $ctx }}
            defaultMode: 0440
            items:
              - key: {{ $auth.ordersToken.key | quote }}
                path: products.token
        {{- end }}
        {{- if $auth.revokedTokens }}
        - name: revoked-tokens
          configMap:
            name: {{ include "shop.revokedTokensConfigMapName" $ctx }}
            defaultMode: 0444
        {{- end }}
        - name: tmp
          emptyDir:
            medium: Memory
            sizeLimit: 16Mi
      {{- include "shop.scheduling" (dict "svc" $svc) | nindent 6 }}
  volumeClaimTemplates:
    {{- include "shop.volumeClaimTemplate" (dict "svc" $svc) | nindent 4 }}
{{- end }}
