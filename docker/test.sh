#!/usr/bin/env bash
# Builds the memnet image from this repository with podman, runs it, and checks it for real:
# health SERVING (the image's own HEALTHCHECK too), a write and a query through the SDK from
# outside the container, memories still there after a restart, and a clean SIGTERM stop
# within the grace period. Run as root on a Debian host:
#
#   bash docker/test.sh            # about 4 minutes the first time (base image + torch layer)
#
# Environment: MEMNET_TEST_KEEP=1 keeps the image; MEMNET_BASE_IMAGE picks another base
# (default: a local debootstrap'd bookworm, made on first use).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
log() { printf '[docker/test.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

need=()
for tool in podman buildah debootstrap runc; do command -v "$tool" >/dev/null || need+=("$tool"); done
if ((${#need[@]})); then
  log "installing ${need[*]} (Debian packages)"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman buildah debootstrap runc >/dev/null
fi
export CONTAINERS_CONF="$repo/docker/podman/containers.conf"
export CONTAINERS_STORAGE_CONF="$repo/docker/podman/storage.conf"

base_image=${MEMNET_BASE_IMAGE:-localhost/bookworm-py:base}
if [ "$base_image" = localhost/bookworm-py:base ] && ! podman image exists "$base_image"; then
  # The host's Debian mirror, from whichever apt source files exist (either may be absent;
  # no match means debootstrap's default mirror).
  mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -oE '(URIs:|deb) +https?://[^ ]+/debian/?( |$)' | head -n1 | awk '{print $2}' || true)
  rootfs=$(mktemp -d /var/tmp/memnet-rootfs.XXXXXX)
  log "making $base_image with debootstrap from ${mirror:-the default mirror} (about 1-2 minutes)"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$rootfs" ${mirror:+"$mirror"} >/dev/null
  tar -C "$rootfs" -c . | podman import - "$base_image" >/dev/null
  rm -rf "$rootfs"
fi

image=localhost/memnet:test
build_args=(--build-arg "BASE_IMAGE=$base_image")
build_mounts=()
if compgen -G "/opt/wheels/torch-2.13.0+cpu-*.whl" >/dev/null; then
  build_args+=(--build-arg TORCH_INDEX_URL= --build-arg PIP_FIND_LINKS=/wheels)
  build_mounts+=(-v /opt/wheels:/wheels:ro)
fi
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  build_args+=(--build-arg PIP_CERT=/host-ca.crt)
  build_mounts+=(-v /etc/ssl/certs/ca-certificates.crt:/host-ca.crt:ro)
fi
log "building $image"
build_start=$SECONDS
podman build --format docker -f docker/Dockerfile "${build_args[@]}" "${build_mounts[@]}" \
  -t "$image" . >/tmp/memnet-image-build.log 2>&1 || { tail -n 40 /tmp/memnet-image-build.log; exit 1; }
log "built in $((SECONDS - build_start)) s; size $(podman image inspect "$image" --format '{{.Size}}' \
  | awk '{printf "%.0f MB", $1/1e6}')"

free_port() { "$repo/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
grpc_port=$(free_port); metrics_port=$(free_port)
name=memnet-test-$$
volume=memnet-test-data-$$
grace_s=30
cleanup() {
  podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
  podman volume rm -f "$volume" >/dev/null 2>&1 || true
  [ -n "${MEMNET_TEST_KEEP:-}" ] || podman rmi -f "$image" >/dev/null 2>&1 || true
}
trap cleanup EXIT

wait_serving() {
  local deadline=$((SECONDS + 120))
  until "$repo/.venv/bin/memnet" health --target "127.0.0.1:$grpc_port" --timeout-s 2 >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then podman logs --tail 30 "$name"; log "not SERVING after 120 s"; exit 1; fi
    if [ "$(podman inspect "$name" --format '{{.State.Running}}')" != true ]; then
      podman logs --tail 30 "$name"; log "container exited"; exit 1
    fi
    sleep 0.5
  done
}

log "starting $name (gRPC 127.0.0.1:$grpc_port, metrics :$metrics_port, volume $volume)"
start=$SECONDS
podman run -d --name "$name" --network host --stop-timeout "$grace_s" \
  -e MEMNET_PORT="$grpc_port" -e MEMNET_METRICS_PORT="$metrics_port" \
  -v "$volume:/data" "$image" >/dev/null
wait_serving
log "SERVING $((SECONDS - start)) s after start"
podman healthcheck run "$name" || { log "the image HEALTHCHECK is not healthy"; exit 1; }
log "image HEALTHCHECK: healthy"
curl -fsS "http://127.0.0.1:$metrics_port/metrics" | grep -q "^memnet_" || { log "no memnet_ metrics on :$metrics_port"; exit 1; }
log "metrics endpoint answers"

"$repo/.venv/bin/python" "$repo/docker/roundtrip.py" --target "127.0.0.1:$grpc_port" write
log "restarting (SIGTERM, then start on the same volume)"
stop_start=$SECONDS
podman stop -t "$grace_s" "$name" >/dev/null
stop_s=$((SECONDS - stop_start))
exit_code=$(podman inspect "$name" --format '{{.State.ExitCode}}')
log "stopped in ${stop_s} s with exit code $exit_code (grace ${grace_s} s)"
[ "$exit_code" = 0 ] || { podman logs --tail 30 "$name"; log "unclean exit"; exit 1; }
((stop_s < grace_s)) || { log "stop took the whole grace period"; exit 1; }
podman start "$name" >/dev/null
wait_serving
"$repo/.venv/bin/python" "$repo/docker/roundtrip.py" --target "127.0.0.1:$grpc_port" check
podman logs "$name" 2>&1 | grep -qi "traceback" && { log "traceback in the server log"; exit 1; }
log "container test passed"
