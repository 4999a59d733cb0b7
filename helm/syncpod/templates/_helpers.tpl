{{/* Names, labels and the pieces every pod shares. */}}

{{- define "syncpod.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-syncpod, or the release name alone when it already contains the chart name.
     Kept to 42 characters: KEDA adds a suffix to the ScaledJob's Job names, and those
     become pod names. */}}
{{- define "syncpod.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 42 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 42 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 42 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "syncpod.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "syncpod.selectorLabels" -}}
app.kubernetes.io/name: {{ include "syncpod.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "syncpod.labels" -}}
helm.sh/chart: {{ include "syncpod.chart" . }}
{{ include "syncpod.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: syncpod
{{- end -}}

{{/* Labels of one component: (dict "root" $ "component" "worker"). */}}
{{- define "syncpod.componentLabels" -}}
{{ include "syncpod.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "syncpod.componentSelectorLabels" -}}
{{ include "syncpod.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "syncpod.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "syncpod.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "syncpod.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the database password, and its key. */}}
{{- define "syncpod.databaseSecretName" -}}
{{- if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else -}}
{{- printf "%s-database" (include "syncpod.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* PostgreSQL's host; a bare name is a Service of the release's namespace. */}}
{{- define "syncpod.databaseHost" -}}
{{- if contains "." .Values.database.host -}}
{{- .Values.database.host -}}
{{- else -}}
{{- printf "%s.%s.svc" .Values.database.host .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* The database URL without the password: libpq takes the password from PGPASSWORD, which
     comes from the Secret, so the URL is not secret and sits in the ConfigMap. */}}
{{- define "syncpod.databaseUrl" -}}
{{- $db := .Values.database -}}
{{- $params := dict "sslmode" $db.sslmode -}}
{{- range $key, $value := $db.parameters -}}
{{- $_ := set $params $key (toString $value) -}}
{{- end -}}
{{- $query := list -}}
{{- range $key := keys $params | sortAlpha -}}
{{- $query = append $query (printf "%s=%s" (include "syncpod.uriEscape" $key) (include "syncpod.uriEscape" (get $params $key))) -}}
{{- end -}}
{{- printf "postgresql://%s@%s:%d/%s?%s" (include "syncpod.uriEscape" $db.user) (include "syncpod.databaseHost" .) (int $db.port) (include "syncpod.uriEscape" $db.name) (join "&" $query) -}}
{{- end -}}

{{/* Percent-encoding for a part of a libpq URI, which decodes %XX alone: urlquery writes a
     space as "+", which libpq would keep as a plus sign. */}}
{{- define "syncpod.uriEscape" -}}
{{- urlquery . | replace "+" "%20" -}}
{{- end -}}

{{/* Checks across values that values.schema.json cannot express; each fails the install with
     a message naming the values. Included by the ConfigMap, so every render runs them. */}}
{{- define "syncpod.validate" -}}
{{- $c := .Values.config -}}
{{- if and .Values.database.existingSecret .Values.database.password -}}
{{- fail "set database.existingSecret or database.password, not both" -}}
{{- end -}}
{{- $drain := add $c.drainDeadlineSeconds $c.stopGraceSeconds $c.terminatingGraceSeconds -}}
{{- if le (int .Values.worker.terminationGracePeriodSeconds) (int $drain) -}}
{{- fail (printf "worker.terminationGracePeriodSeconds (%d) must exceed config.drainDeadlineSeconds + config.stopGraceSeconds + config.terminatingGraceSeconds (%d), or Kubernetes kills draining workers" (int .Values.worker.terminationGracePeriodSeconds) (int $drain)) -}}
{{- end -}}
{{- $scale := add $c.scaleIntervalSeconds .Values.worker.pollingIntervalSeconds -}}
{{- if lt (int $c.terminatingGraceSeconds) (int $scale) -}}
{{- fail (printf "config.terminatingGraceSeconds (%d) must be at least config.scaleIntervalSeconds + worker.pollingIntervalSeconds (%d), or KEDA starts replacements for ending workers" (int $c.terminatingGraceSeconds) (int $scale)) -}}
{{- end -}}
{{- if lt (int .Values.worker.maxReplicaCount) (int .Values.worker.minReplicaCount) -}}
{{- fail "worker.maxReplicaCount must be at least worker.minReplicaCount" -}}
{{- end -}}
{{- end -}}

{{/* syncpod's settings as environment variables (the ConfigMap's data; the migration hook,
     which runs before the ConfigMap exists, gets them inline). */}}
{{- define "syncpod.settings" -}}
{{- $c := .Values.config -}}
SYNCPOD_DATABASE_URL: {{ include "syncpod.databaseUrl" . | quote }}
SYNCPOD_SCHEMA: {{ .Values.schema | quote }}
SYNCPOD_LOG_FORMAT: {{ $c.logFormat | quote }}
SYNCPOD_LOG_LEVEL: {{ $c.logLevel | quote }}
SYNCPOD_WORKER_CAPACITY: {{ $c.workerCapacity | quote }}
SYNCPOD_ISOLATION: {{ $c.isolation | quote }}
SYNCPOD_ACTIVE_PERIOD: {{ printf "%ds" (int $c.activePeriodSeconds) | quote }}
SYNCPOD_DRAIN_DEADLINE: {{ printf "%ds" (int $c.drainDeadlineSeconds) | quote }}
SYNCPOD_STOP_GRACE: {{ printf "%ds" (int $c.stopGraceSeconds) | quote }}
SYNCPOD_TERMINATING_GRACE: {{ printf "%ds" (int $c.terminatingGraceSeconds) | quote }}
SYNCPOD_SCALE_INTERVAL: {{ printf "%ds" (int $c.scaleIntervalSeconds) | quote }}
SYNCPOD_KEDA_POLLING_INTERVAL: {{ printf "%ds" (int .Values.worker.pollingIntervalSeconds) | quote }}
SYNCPOD_HTTP_PORT: {{ $c.httpPort | quote }}
{{- if not (kindIs "invalid" $c.minimumActiveWorkers) }}
SYNCPOD_MINIMUM_ACTIVE_WORKERS: {{ $c.minimumActiveWorkers | quote }}
{{- end }}
{{- if $c.jobMemoryLimit }}
SYNCPOD_JOB_MEMORY_LIMIT: {{ $c.jobMemoryLimit | quote }}
{{- end }}
{{- range $name, $value := $c.extraEnv }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* The password, from the Secret, as libpq's PGPASSWORD. */}}
{{- define "syncpod.passwordEnv" -}}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "syncpod.databaseSecretName" . }}
      key: {{ .Values.database.passwordKey }}
{{- end -}}

{{/* One syncpod container: (dict "root" $ "name" "worker" "args" (list ...) "resources" ...
     ["ports" (list ...)] ["extra" (dict ...)]); "extra" adds fields such as probes. */}}
{{- define "syncpod.container" -}}
{{- $root := .root -}}
- name: {{ .name }}
  image: {{ include "syncpod.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  args:
    {{- toYaml .args | nindent 4 }}
  envFrom:
    - configMapRef:
        name: {{ include "syncpod.fullname" $root }}
  env:
    {{- include "syncpod.passwordEnv" $root | nindent 4 }}
  {{- with .ports }}
  ports:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .extra }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  resources:
    {{- toYaml .resources | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- end -}}

{{/* Pod-level settings every pod shares. */}}
{{- define "syncpod.podSpecCommon" -}}
serviceAccountName: {{ include "syncpod.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{/* nodeSelector, tolerations and affinity of one role's values. */}}
{{- define "syncpod.scheduling" -}}
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
{{- end -}}
