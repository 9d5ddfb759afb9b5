# ---- body: infra/templates/boot.sh (settings above are generated per region) ----------
exec > >(tee -a /var/log/llm-fleet-boot.log | logger -t llm-fleet-boot) 2>&1
echo "llm-fleet boot: ${STACK} image=${IMAGE} model=${MODEL}"

retry() {  # retry N_TIMES CMD...: bounded retries with a growing pause
  local n=$1 i=1; shift
  until "$@"; do
    if (( i >= n )); then echo "failed after ${n} tries: $*" >&2; return 1; fi
    sleep $(( i * 5 )); i=$(( i + 1 ))
  done
}

install -d -m 0755 /etc/llm-fleet "${WEIGHTS_DIR}"

# ---- NVIDIA container runtime -------------------------------------------------------
# The GPU images (AWS Deep Learning Base OSS Nvidia Driver AMI, GCP Deep Learning VM) ship the
# driver; the container toolkit is installed here only when the image lacks it.
if ! command -v docker >/dev/null 2>&1; then
  retry 5 apt-get update -q
  retry 5 apt-get install -y -q docker.io
fi
if ! command -v nvidia-ctk >/dev/null 2>&1; then
  distribution="$(. /etc/os-release; echo "${ID}${VERSION_ID}")"
  curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey \
    | gpg --dearmor -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
  curl -fsSL "https://nvidia.github.io/libnvidia-container/${distribution}/libnvidia-container.list" \
    | sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] https://#' \
    > /etc/apt/sources.list.d/nvidia-container-toolkit.list
  retry 5 apt-get update -q
  retry 5 apt-get install -y -q nvidia-container-toolkit
fi
nvidia-ctk runtime configure --runtime=docker
systemctl restart docker
nvidia-smi -L

# ---- cloud helpers ------------------------------------------------------------------
imds_token() {
  curl -fsS -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 300"
}

fetch_api_keys() {  # writes the keys (one per line) to $1, readable by root only
  local out=$1
  umask 077
  case "${CLOUD}" in
    aws) retry 5 aws secretsmanager get-secret-value --region "${REGION}" --secret-id "${API_KEYS_SECRET}" \
           --query SecretString --output text > "${out}" ;;
    gcp) retry 5 gcloud secrets versions access latest --secret="${API_KEYS_SECRET}" > "${out}" ;;
  esac
}

sync_weights() {
  case "${WEIGHTS_MIRROR}" in
    s3://*) retry 3 aws s3 sync --only-show-errors --region "${REGION}" "${WEIGHTS_MIRROR}" "${WEIGHTS_DIR}" ;;
    gs://*) retry 3 gcloud storage rsync --recursive "${WEIGHTS_MIRROR}" "${WEIGHTS_DIR}" ;;
    *) return 0 ;;
  esac
}

# ---- image, weights, keys -----------------------------------------------------------
retry 5 docker pull "${IMAGE}"
model_ref="${MODEL}"
weights_mount=()
if [[ -n "${WEIGHTS_MIRROR}" ]]; then
  sync_weights
  model_ref=/models
  weights_mount=(--volume "${WEIGHTS_DIR}:/models:ro")
fi
fetch_api_keys /etc/llm-fleet/api-keys

# ---- container environment ------------------------------------------------------------
{
  echo "LLM_SERVICE_MODEL=${model_ref}"
  echo "LLM_SERVICE_SERVED_MODEL_NAME=${SERVED_NAME}"
  echo "LLM_SERVICE_QUANTIZATION=${QUANTIZATION}"
  echo "LLM_SERVICE_MAX_MODEL_LEN=${MAX_MODEL_LEN}"
  echo "LLM_SERVICE_GPU_MEMORY_UTILIZATION=${GPU_MEMORY_UTILIZATION}"
  echo "LLM_SERVICE_DEVICE=gpu"
  echo "LLM_SERVICE_PORT=${PORT}"
  echo "LLM_SERVICE_MAX_TOKENS_CAP=${MAX_TOKENS_CAP}"
  echo "LLM_SERVICE_API_KEYS_FILE=/run/secrets/api-keys"
  echo "LLM_SERVICE_WATCH_AWS=$([[ ${DRAIN_WATCHER} == aws ]] && echo true || echo false)"
  echo "LLM_SERVICE_WATCH_GCP=$([[ ${DRAIN_WATCHER} == gcp ]] && echo true || echo false)"
  echo "HF_HOME=/models-cache"
} > /etc/llm-fleet/env
chmod 0600 /etc/llm-fleet/env

# ---- systemd unit: docker stop waits longer than the drain budget (${DRAIN_BUDGET_S} s) ---
cat > /etc/systemd/system/llm-fleet.service <<UNIT
[Unit]
Description=llm-fleet inference service (${IMAGE})
After=docker.service network-online.target
Requires=docker.service
Wants=network-online.target

[Service]
Restart=always
RestartSec=5
TimeoutStartSec=0
TimeoutStopSec=$(( STOP_TIMEOUT_S + 15 ))
ExecStartPre=-/usr/bin/docker rm -f llm-fleet
ExecStart=/usr/bin/docker run --rm --name llm-fleet --gpus all --network host --ipc host \\
  --stop-timeout ${STOP_TIMEOUT_S} --env-file /etc/llm-fleet/env \\
  --volume /etc/llm-fleet/api-keys:/run/secrets/api-keys:ro \\
  --volume /opt/llm-fleet/hf-cache:/models-cache ${weights_mount[*]} ${IMAGE}
ExecStop=/usr/bin/docker stop --time ${STOP_TIMEOUT_S} llm-fleet

[Install]
WantedBy=multi-user.target
UNIT
install -d -m 0755 /opt/llm-fleet/hf-cache
systemctl daemon-reload
systemctl enable --now llm-fleet.service

# ---- AWS: per-instance metrics for target tracking, lifecycle hook on termination -----
if [[ "${CLOUD}" == aws ]]; then
  token="$(imds_token)"
  instance_id="$(curl -fsS -H "X-aws-ec2-metadata-token: ${token}" http://169.254.169.254/latest/meta-data/instance-id)"
  asg="$(aws autoscaling describe-auto-scaling-instances --region "${REGION}" --instance-ids "${instance_id}" \
        --query 'AutoScalingInstances[0].AutoScalingGroupName' --output text)"
  cat > /usr/local/bin/llm-fleet-metrics <<SCRIPT
#!/bin/bash
# Publishes the gateway's in-flight gauge and GPU utilisation to CloudWatch every 10 s.
set -uo pipefail
while sleep 10; do
  inflight="\$(curl -fsS --max-time 2 http://127.0.0.1:${PORT}/metrics \\
    | awk '/^llm_gateway_requests_in_flight /{print \$2}')"
  gpu="\$(nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits | awk '{s+=\$1} END {print s/NR}')"
  aws cloudwatch put-metric-data --region ${REGION} --namespace ${METRICS_NAMESPACE} \\
    --dimensions AutoScalingGroupName=${asg} --metric-data \\
    "MetricName=${IN_FLIGHT_METRIC},Value=\${inflight:-0},Unit=Count" \\
    "MetricName=${GPU_UTILIZATION_METRIC},Value=\${gpu:-0},Unit=Percent" || true
done
SCRIPT
  # On scale-in the ASG holds the instance in Terminating:Wait; stopping the unit drains the
  # service within its budget, then the hook is completed so the instance goes at once.
  cat > /usr/local/bin/llm-fleet-lifecycle <<SCRIPT
#!/bin/bash
set -uo pipefail
while sleep 5; do
  t="\$(curl -fsS -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')"
  state="\$(curl -fsS -H "X-aws-ec2-metadata-token: \$t" \\
    http://169.254.169.254/latest/meta-data/autoscaling/target-lifecycle-state || true)"
  if [[ "\$state" == Terminated ]]; then
    systemctl stop llm-fleet.service
    aws autoscaling complete-lifecycle-action --region ${REGION} --auto-scaling-group-name ${asg} \\
      --lifecycle-hook-name ${LIFECYCLE_HOOK} --instance-id ${instance_id} --lifecycle-action-result CONTINUE
    exit 0
  fi
done
SCRIPT
  chmod 0755 /usr/local/bin/llm-fleet-metrics /usr/local/bin/llm-fleet-lifecycle
  for unit in metrics lifecycle; do
    cat > "/etc/systemd/system/llm-fleet-${unit}.service" <<UNIT
[Unit]
Description=llm-fleet ${unit}
After=llm-fleet.service

[Service]
Restart=always
RestartSec=5
ExecStart=/usr/local/bin/llm-fleet-${unit}

[Install]
WantedBy=multi-user.target
UNIT
  done
  systemctl daemon-reload
  systemctl enable --now llm-fleet-metrics.service llm-fleet-lifecycle.service
fi
echo "llm-fleet boot: done"
