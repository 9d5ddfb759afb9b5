# llm-fleet instance library: sourced by the boot script and every agent (settings.env first).
# Endpoints honour the clouds' own override variables (unset on a cloud instance).
IMDS=${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}
IMDS=${IMDS%/}
GCE=http://${GCE_METADATA_HOST:-metadata.google.internal}
SECRETMANAGER=${CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER:-https://secretmanager.googleapis.com/}
MONITORING=${CLOUDSDK_API_ENDPOINT_OVERRIDES_MONITORING:-https://monitoring.googleapis.com/}
STORAGE=${CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE:-https://storage.googleapis.com/}

log() { echo "llm-fleet $(basename "$0"): $*" >&2; }
die() { log "FATAL: $*"; exit 1; }

retry() {  # retry N CMD...: bounded retries with a growing pause
  local n=$1 i=1
  shift
  until "$@"; do
    if ((i >= n)); then
      log "failed after $n tries: $*"
      return 1
    fi
    sleep $((i * 3))
    i=$((i + 1))
  done
}

imds() {  # imds PATH: one IMDSv2 read (a session token, then the path)
  local token
  token=$(curl -fsS --max-time 2 -X PUT "$IMDS/latest/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 60') &&
    curl -fsS --max-time 2 -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/$1"
}

gce() { curl -fsS --max-time 5 -H 'Metadata-Flavor: Google' "$GCE/computeMetadata/v1/$1"; }

gcp_token() {  # the instance service account's access token
  gce instance/service-accounts/default/token | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

gcp_secret() {  # gcp_secret NAME: the latest version's payload
  local token
  token=$(gcp_token) &&
    curl -fsS --max-time 10 -H "Authorization: Bearer $token" \
      "${SECRETMANAGER%/}/v1/projects/$GCP_PROJECT/secrets/$1/versions/latest:access" |
    python3 -c 'import base64,json,sys; sys.stdout.write(base64.b64decode(json.load(sys.stdin)["payload"]["data"]).decode())'
}

secret() {  # secret NAME: from the cloud's secret store
  case $CLOUD in
    aws) retry 5 aws secretsmanager get-secret-value --region "$REGION" --secret-id "$1" --query SecretString --output text ;;
    gcp) retry 5 gcp_secret "$1" ;;
  esac
}

gauge() {  # gauge NAME: the gateway's Prometheus gauge, from its loopback metrics port
  curl -fsS --max-time 2 "http://127.0.0.1:$METRICS_PORT/metrics" |
    awk -v m="$1" '$1 == m { print $2; found = 1 } END { exit !found }'
}

gpu_utilization() {  # mean utilisation of the instance's GPUs, in percent
  nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits | awk '{ s += $1 } END { if (NR) print s / NR; else exit 1 }'
}

ship_boot_log() {  # AWS: the boot log to the region's instance log group (seen without SSH)
  [[ $CLOUD == aws && -n ${LOG_GROUP:-} && -f ${LOG_DIR:-}/boot.log ]] || return 0
  local id stream
  id=${INSTANCE_ID:-$(imds meta-data/instance-id)} || return 0
  stream="$id/boot"
  aws logs create-log-stream --region "$REGION" --log-group-name "$LOG_GROUP" --log-stream-name "$stream" \
    >/dev/null 2>&1 || true
  python3 - "$LOG_DIR/boot.log" >"$LOG_DIR/boot-events.json" <<'PY'
import json, sys, time
now = int(time.time() * 1000)
lines = [line.rstrip("\n")[:8000] for line in open(sys.argv[1], errors="replace")][-5000:]
print(json.dumps([{"timestamp": now, "message": line or " "} for line in lines]))
PY
  aws logs put-log-events --region "$REGION" --log-group-name "$LOG_GROUP" --log-stream-name "$stream" \
    --log-events "file://$LOG_DIR/boot-events.json" >/dev/null || log "boot log not shipped to $LOG_GROUP"
}
