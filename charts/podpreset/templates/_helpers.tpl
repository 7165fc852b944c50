{{/*
Names. With the release called "podpreset" (the documented install) every object has deploy/'s
name: podpreset, podpreset-webhook, podpreset-webhook-tls, ...
*/}}
{{- define "podpreset.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "podpreset.webhookName" -}}
{{- printf "%s-webhook" (include "podpreset.fullname" .) -}}
{{- end -}}

{{/* The Secret the webhook serves its certificate from (tls.crt, tls.key). */}}
{{- define "podpreset.tlsSecretName" -}}
{{- if eq .Values.certificates.mode "external" -}}
{{- required "certificates.external.secretName is required with certificates.mode=external" .Values.certificates.external.secretName -}}
{{- else -}}
{{- printf "%s-tls" (include "podpreset.webhookName" .) -}}
{{- end -}}
{{- end -}}

{{- define "podpreset.caSecretName" -}}
{{- printf "%s-ca" (include "podpreset.webhookName" .) -}}
{{- end -}}

{{/* The Service's DNS names, which the serving certificate must carry. */}}
{{- define "podpreset.dnsNames" -}}
{{- $svc := include "podpreset.webhookName" . -}}
- {{ printf "%s.%s.svc" $svc .Release.Namespace }}
- {{ printf "%s.%s.svc.cluster.local" $svc .Release.Namespace }}
{{- end -}}

{{/*
Labels. deploy/base's two (name, part-of) on every object, then Helm's own (chart, instance,
managed-by, version), which tests/chart/test_one_truth.py ignores when it compares with deploy/.
*/}}
{{- define "podpreset.labels" -}}
app.kubernetes.io/name: podpreset
app.kubernetes.io/part-of: podpreset
{{ include "podpreset.helmLabels" . }}
{{- end -}}

{{- define "podpreset.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* The webhook pods' label, in selectors (deploy/base selects on it alone). */}}
{{- define "podpreset.selectorLabels" -}}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "podpreset.image" -}}
{{- if .Values.image.digest -}}
{{- $tag := .Values.image.tag | toString -}}
{{- printf "%s%s@%s" .Values.image.repository (ternary (printf ":%s" $tag) "" (ne $tag "")) .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}
{{- end -}}
