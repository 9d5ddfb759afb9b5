# ---- GCP: per-instance metrics for the MIG autoscalers (infra/templates/gcp_metrics.sh) ----
# Appended to the shared boot script on GCP. Writes the gateway's in-flight gauge and the GPU
# utilisation as gce_instance custom metrics every METRICS_PERIOD_S seconds; the regional
# autoscalers of both MIGs track them per instance.
if [[ "${CLOUD}" == gcp ]]; then
  cat > /usr/local/bin/llm-fleet-metrics <<SCRIPT
#!/bin/bash
set -uo pipefail
md() { curl -fsS --max-time 2 -H 'Metadata-Flavor: Google' "http://metadata.google.internal/computeMetadata/v1/\$1"; }
project="\$(md project/project-id)"
instance_id="\$(md instance/id)"
zone="\$(md instance/zone)"; zone="\${zone##*/}"
series() {  # series METRIC_TYPE VALUE
  printf '{"metric":{"type":"%s"},"resource":{"type":"gce_instance","labels":{"project_id":"%s","instance_id":"%s","zone":"%s"}},"points":[{"interval":{"endTime":"%s"},"value":{"doubleValue":%s}}]}' \\
    "\$1" "\${project}" "\${instance_id}" "\${zone}" "\$(date -u +%Y-%m-%dT%H:%M:%SZ)" "\$2"
}
while sleep ${METRICS_PERIOD_S}; do
  inflight="\$(curl -fsS --max-time 2 http://127.0.0.1:${PORT}/metrics | awk '/^llm_gateway_requests_in_flight /{print \$2}')"
  gpu="\$(nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits | awk '{s+=\$1} END {print s/NR}')"
  token="\$(md instance/service-accounts/default/token | sed -E 's/.*"access_token":"([^"]+)".*/\1/')"
  body="{\"timeSeries\":[\$(series ${IN_FLIGHT_METRIC_TYPE} "\${inflight:-0}"),\$(series ${GPU_METRIC_TYPE} "\${gpu:-0}")]}"
  curl -fsS --max-time 5 -X POST -H "Authorization: Bearer \${token}" -H 'Content-Type: application/json' \\
    "https://monitoring.googleapis.com/v3/projects/\${project}/timeSeries" -d "\${body}" >/dev/null || true
done
SCRIPT
  chmod 0755 /usr/local/bin/llm-fleet-metrics
  cat > /etc/systemd/system/llm-fleet-metrics.service <<UNIT
[Unit]
Description=llm-fleet autoscaling metrics
After=llm-fleet.service

[Service]
Restart=always
RestartSec=5
ExecStart=/usr/local/bin/llm-fleet-metrics

[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable --now llm-fleet-metrics.service
fi
echo "llm-fleet boot: gcp metrics publisher started"
