# ---- body: infra/templates/instance/boot.sh (the files above are rendered per region) ----
# shellcheck source=/dev/null
. "$HOME_DIR/settings.env"
# shellcheck source=/dev/null
. "$HOME_DIR/lib.sh"
LOG_DIR=$ROOT/var/log/llm-fleet
mkdir -p "$LOG_DIR"
exec > >(tee -a "$LOG_DIR/boot.log") 2>&1
trap 'log "FAILED at line $LINENO: $BASH_COMMAND"; trap - ERR; ship_boot_log' ERR
log "boot: $STACK pool $POOL, image $IMAGE, $(date -u +%Y-%m-%dT%H:%M:%SZ)"

command -v docker >/dev/null || die "docker is not on this image (the GPU images named in the stacks ship it)"
# The image and the weights go to the instance-store NVMe when the AMI mounted it (AWS Deep
# Learning AMIs: $DLAMI_NVME): a cold start reads ~30 GB, and the root volume is slower.
DATA=$HOME_DIR/data
if mountpoint -q "$ROOT$DLAMI_NVME" 2>/dev/null; then
  DATA=$ROOT$DLAMI_NVME/llm-fleet
  if [[ ! -f $ROOT/etc/docker/daemon.json ]] || ! grep -q "$DATA/docker" "$ROOT/etc/docker/daemon.json"; then
    log "docker data root on $DATA/docker (instance store)"
    mkdir -p "$DATA/docker" "$ROOT/etc/docker"
    python3 - "$ROOT/etc/docker/daemon.json" "$DATA/docker" <<'PY'
import json, pathlib, sys
path = pathlib.Path(sys.argv[1])
config = json.loads(path.read_text()) if path.exists() else {}
config["data-root"] = sys.argv[2]
path.write_text(json.dumps(config, indent=2))
PY
    systemctl restart docker
  fi
fi
install -d -m 0755 "$DATA"
install -d -m 0750 -o "$CONTAINER_UID" -g "$CONTAINER_UID" "$DATA/model-cache"

if [[ $DEVICE == gpu ]]; then  # the image ships the driver and the container toolkit
  nvidia-smi -L || die "no NVIDIA GPU visible: the driver is not loaded"
  if ! docker info --format '{{json .Runtimes}}' | grep -q nvidia; then
    nvidia-ctk runtime configure --runtime=docker
    systemctl restart docker
  fi
fi

case $CLOUD in
  aws) INSTANCE_ID=$(retry 5 imds meta-data/instance-id) ;;
  gcp)
    INSTANCE_ID=$(retry 5 gce instance/id)
    ZONE=$(retry 5 gce instance/zone)
    ZONE=${ZONE##*/}
    ;;
esac
{
  echo "DATA=$DATA"
  echo "INSTANCE_ID=$INSTANCE_ID"
  echo "ZONE=${ZONE:-}"
} >>"$HOME_DIR/settings.env"

# ---- the image: log in to its registry, pull ------------------------------------------------
registry=${IMAGE%%/*}
if [[ -n $REGISTRY_SECRET ]]; then
  credentials=$(secret "$REGISTRY_SECRET")
  login() { printf '%s' "${credentials#*:}" | docker login --username "${credentials%%:*}" --password-stdin "$registry"; }
elif [[ $registry == *.dkr.ecr.*.amazonaws.com ]]; then
  login() { aws ecr get-login-password --region "$(cut -d. -f4 <<<"$registry")" | docker login --username AWS --password-stdin "$registry"; }
elif [[ $registry == *-docker.pkg.dev ]]; then
  login() { gcp_token | docker login --username oauth2accesstoken --password-stdin "$registry"; }
else
  login() { true; }
fi
retry 3 login
retry 5 docker pull "$IMAGE"

# ---- the weights: the object-store mirror, or the engine loads them from the model hub -----
gcs_sync() {  # gcs_sync gs://BUCKET[/PREFIX] DIR: every object under the prefix (JSON API)
  local token
  token=$(gcp_token) && python3 - "$1" "$2" "${STORAGE%/}" "$token" <<'PY'
import json, pathlib, sys, urllib.parse, urllib.request
url, dest, api, token = sys.argv[1:]
bucket, _, prefix = url.removeprefix("gs://").partition("/")
prefix = prefix.rstrip("/") + "/" if prefix else ""
def get(path):
    request = urllib.request.Request(api + path, headers={"Authorization": f"Bearer {token}"})
    return urllib.request.urlopen(request, timeout=60)
page = ""
while True:
    query = urllib.parse.urlencode({"prefix": prefix, "pageToken": page} if page else {"prefix": prefix})
    listing = json.load(get(f"/storage/v1/b/{bucket}/o?{query}"))
    for item in listing.get("items", []):
        name = item["name"]
        target = pathlib.Path(dest, name[len(prefix):])
        if name.endswith("/") or (target.exists() and target.stat().st_size == int(item["size"])):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with get(f"/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}?alt=media") as body:
            target.write_bytes(body.read())
    page = listing.get("nextPageToken", "")
    if not page:
        break
PY
}
if [[ -n $WEIGHTS_MIRROR ]]; then
  mkdir -p "$DATA/weights"
  case $WEIGHTS_MIRROR in
    s3://*) retry 3 aws s3 sync --only-show-errors --region "$REGION" "$WEIGHTS_MIRROR" "$DATA/weights" ;;
    gs://*) retry 3 gcs_sync "$WEIGHTS_MIRROR" "$DATA/weights" ;;
  esac
  log "weights: $(du -sh "$DATA/weights" | cut -f1) from $WEIGHTS_MIRROR"
fi

# ---- secrets: readable by the container's user only -------------------------------------------
install -d -m 0700 "$HOME_DIR/secrets"
(
  umask 077
  secret "$API_KEYS_SECRET" >"$HOME_DIR/secrets/api-keys.new"
  : >"$HOME_DIR/secrets/secret.env"
  if [[ -n $HF_TOKEN_SECRET ]]; then echo "HF_TOKEN=$(secret "$HF_TOKEN_SECRET")" >>"$HOME_DIR/secrets/secret.env"; fi
)
install -m 0400 -o "$CONTAINER_UID" -g "$CONTAINER_UID" "$HOME_DIR/secrets/api-keys.new" "$HOME_DIR/secrets/api-keys"
rm -f "$HOME_DIR/secrets/api-keys.new"
# The watchers read the same metadata endpoints as this script.
echo "LLM_SERVICE_AWS_METADATA_URL=$IMDS" >>"$HOME_DIR/service.env"
echo "LLM_SERVICE_GCP_METADATA_URL=$GCE" >>"$HOME_DIR/service.env"

# ---- units: thin, each runs one of the scripts above ---------------------------------------------
unit() {  # unit NAME DESCRIPTION COMMAND RESTART [EXTRA]
  cat >"$ROOT/etc/systemd/system/$1.service" <<UNIT
[Unit]
Description=$2
After=docker.service network-online.target
Wants=network-online.target

[Service]
ExecStart=$3
Restart=$4
RestartSec=5
${5:-}

[Install]
WantedBy=multi-user.target
UNIT
}
mkdir -p "$ROOT/etc/systemd/system"
unit llm-fleet "llm-fleet service ($IMAGE)" "$HOME_DIR/bin/llm-fleet-service" on-failure \
  "ExecStop=$HOME_DIR/bin/llm-fleet-stop
TimeoutStopSec=$((STOP_TIMEOUT_S + 15))"
units=(llm-fleet.service)
case $CLOUD in
  aws)
    unit llm-fleet-agent "llm-fleet metrics and liveness" "$HOME_DIR/bin/aws-agent" always
    unit llm-fleet-lifecycle "llm-fleet scale-in drain" "$HOME_DIR/bin/aws-lifecycle" on-failure
    units+=(llm-fleet-agent.service llm-fleet-lifecycle.service)
    ;;
  gcp)
    unit llm-fleet-agent "llm-fleet metrics" "$HOME_DIR/bin/gcp-agent" always
    units+=(llm-fleet-agent.service)
    ;;
esac
systemctl daemon-reload
systemctl enable --now "${units[@]}"
log "boot: done; ${units[*]} started"
ship_boot_log
