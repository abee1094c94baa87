{{/* The chart's name, or nameOverride. */}}
{{- define "bosun.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The objects' name: the release name when it already says bosun (so
`helm install bosun` names everything as deploy/base does), else
<release>-bosun.
*/}}
{{- define "bosun.fullname" -}}
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

{{/* What selects the pods: the same two labels as deploy/base. */}}
{{- define "bosun.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bosun.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "bosun.labels" -}}
{{ include "bosun.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: bosun
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "bosun.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bosun.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "bosun.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The subject every ClusterRoleBinding and RoleBinding binds. */}}
{{- define "bosun.subjects" -}}
- kind: ServiceAccount
  name: {{ include "bosun.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/*
A Role and RoleBinding letting the host get one Secret, by name, in its
namespace, and no other: for pull secrets and HTTP credentials.
Takes a dict: root (the chart's context), secret ({namespace, name}),
role (the Role's name), why (a comment).
*/}}
{{- define "bosun.secretReader" -}}
{{- $root := .root }}
---
# {{ .secret.namespace }}/{{ .secret.name }}, {{ .why }}: get, by name only.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ .role }}
  namespace: {{ required "each Secret needs a namespace" .secret.namespace }}
  labels:
    {{- include "bosun.labels" $root | nindent 4 }}
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    resourceNames: [{{ required "each Secret needs a name" .secret.name | quote }}]
    verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .role }}
  namespace: {{ .secret.namespace }}
  labels:
    {{- include "bosun.labels" $root | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ .role }}
subjects:
  {{- include "bosun.subjects" $root | nindent 2 }}
{{- end }}
