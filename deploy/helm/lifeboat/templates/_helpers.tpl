{{- define "lifeboat.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lifeboat.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "lifeboat.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "lifeboat.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "lifeboat.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lifeboat.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "lifeboat.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lifeboat.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lifeboat.labels" -}}
{{ include "lifeboat.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "lifeboat.configMapName" -}}
{{- default (printf "%s-config" (include "lifeboat.fullname" .)) .Values.existingConfigMap -}}
{{- end -}}

{{- define "lifeboat.keyVaultSecretName" -}}
{{- printf "%s-keyvault" (include "lifeboat.fullname" .) -}}
{{- end -}}

{{/*
The pod spec every workload shares: the ServiceAccount (workload identity), lifeboat.yaml, the
credentials, a writable /tmp on a read-only root filesystem, and no privileges.
Called with (dict "root" $ "component" NAME "args" LIST "resources" MAP "restartPolicy" POLICY "ports" LIST).
*/}}
{{- define "lifeboat.podTemplate" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
metadata:
  labels:
    {{- include "lifeboat.selectorLabels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    {{- if $v.serviceAccount.workloadIdentity.clientId }}
    azure.workload.identity/use: "true"
    {{- end }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # A changed lifeboat.yaml rolls the Deployments; the CronJobs read it at each start anyway.
    checksum/config: {{ toYaml $v.config | sha256sum }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "lifeboat.serviceAccountName" $root }}
  {{- with .restartPolicy }}
  restartPolicy: {{ . }}
  {{- end }}
  # SIGTERM stops the command in progress and records it as interrupted within 9 s.
  terminationGracePeriodSeconds: 30
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    fsGroup: 10001
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: lifeboat
      image: "{{ $v.image.repository }}:{{ default $root.Chart.AppVersion $v.image.tag }}"
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args:
        {{- toYaml .args | nindent 8 }}
      env:
        - name: LIFEBOAT_CONFIG
          value: /etc/lifeboat/lifeboat.yaml
        - name: LIFEBOAT_KUBE_IN_CLUSTER
          value: "true"
        - name: LIFEBOAT_HOST
          value: {{ $v.host | quote }}
        - name: LIFEBOAT_ACTOR
          value: {{ printf "system:serviceaccount:%s:%s" $root.Release.Namespace (include "lifeboat.serviceAccountName" $root) | quote }}
        - name: LIFEBOAT_LOG_FORMAT
          value: {{ $v.logFormat | quote }}
        {{- range $name, $value := $v.env }}
        - name: {{ $name }}
          value: {{ $value | quote }}
        {{- end }}
      {{- if or $v.credentials.existingSecrets $v.credentials.keyVault.enabled }}
      envFrom:
        {{- range $v.credentials.existingSecrets }}
        - secretRef:
            name: {{ . }}
        {{- end }}
        {{- if $v.credentials.keyVault.enabled }}
        - secretRef:
            name: {{ include "lifeboat.keyVaultSecretName" $root }}
        {{- end }}
      {{- end }}
      {{- with .ports }}
      ports:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .probes }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        runAsNonRoot: true
        capabilities:
          drop: [ALL]
      volumeMounts:
        - name: config
          mountPath: /etc/lifeboat
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if $v.credentials.keyVault.enabled }}
        - name: keyvault
          mountPath: /mnt/secrets-store
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "lifeboat.configMapName" $root }}
    - name: tmp
      emptyDir: {}
    {{- if $v.credentials.keyVault.enabled }}
    # Mounting the CSI volume is what makes the driver fetch the objects and sync the Secret.
    - name: keyvault
      csi:
        driver: secrets-store.csi.k8s.io
        readOnly: true
        volumeAttributes:
          secretProviderClass: {{ include "lifeboat.fullname" $root }}
    {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/*
A CronJob around the shared pod template. Called with (dict "root" $ "name" NAME "component" COMPONENT
"schedule" CRON "timeZone" TZ "args" LIST "resources" MAP "activeDeadlineSeconds" N "suspend" BOOL
"startingDeadlineSeconds" N "successfulJobsHistoryLimit" N "failedJobsHistoryLimit" N).
*/}}
{{- define "lifeboat.cronJob" -}}
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "lifeboat.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  schedule: {{ .schedule | quote }}
  timeZone: {{ .timeZone }}
  # No second Job while one runs; the pipeline's slot lock also stops a manual run colliding with it.
  concurrencyPolicy: Forbid
  suspend: {{ .suspend | default false }}
  startingDeadlineSeconds: {{ .startingDeadlineSeconds }}
  successfulJobsHistoryLimit: {{ .successfulJobsHistoryLimit }}
  failedJobsHistoryLimit: {{ .failedJobsHistoryLimit }}
  jobTemplate:
    metadata:
      labels:
        {{- include "lifeboat.selectorLabels" .root | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
    spec:
      activeDeadlineSeconds: {{ .activeDeadlineSeconds }}
      # No automatic retry: a failed run is reported (exit 1, the stage named) and continued with
      # `lifeboat pipeline run --resume last`; a retry would start a second run over the first.
      backoffLimit: 0
      ttlSecondsAfterFinished: {{ .root.Values.pipeline.ttlSecondsAfterFinished }}
      template:
        {{- include "lifeboat.podTemplate" (dict "root" .root "component" .component "args" .args "resources" .resources "restartPolicy" "Never") | nindent 8 }}
{{- end -}}
