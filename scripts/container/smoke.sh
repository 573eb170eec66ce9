#!/usr/bin/env bash
# Runs the built image's filesystem where containers cannot run (here crun cannot set its rlimits
# in this VM): the image is exported to a folder and its entrypoint is run under chroot as the
# image's non-root user, with the image's environment and working directory.
#   1. `run --once` on the local profile's demo world: expects exit 0 and a STREAMED result line.
#   2. `run --admin-port P` on fresh state: waits for /healthz (probed with the image's own
#      HEALTHCHECK command, its port swapped for P) and the run's first progress line, sends
#      SIGTERM while the demo streams, expects exit 0, `stopped_by: signal` and events emitted.
# Needs root, podman and the image from build_image.sh. Not part of .ci/run: it takes minutes.
#
#   scripts/container/smoke.sh [WORK_DIR]     (default /tmp/worldstream-container)
# Env: IMAGE_TAG (default localhost/worldstream:dev), ADMIN_PORT (default 18080).
set -euo pipefail
WORK="${1:-/tmp/worldstream-container}"
IMAGE_TAG="${IMAGE_TAG:-localhost/worldstream:dev}"
ADMIN_PORT="${ADMIN_PORT:-18080}"
R="$WORK/image"

[[ "$(id -u)" == 0 ]] || { echo "smoke.sh: needs root (chroot, mounts)" >&2; exit 1; }

# The image's filesystem, fresh.
rm -rf "$R" && mkdir -p "$R"
cid="$(podman create "$IMAGE_TAG" 2>/dev/null)"
podman export "$cid" | tar -C "$R" -x
podman rm "$cid" >/dev/null 2>&1 || true

# The image's config: user, working dir, environment, entrypoint, health check.
inspect() { podman image inspect "$IMAGE_TAG" --format "$1"; }
user="$(inspect '{{.Config.User}}')"
uid="$(chroot "$R" id -u "$user")"
gid="$(chroot "$R" id -g "$user")"
workdir="$(inspect '{{.Config.WorkingDir}}')"
mapfile -t envs < <(inspect '{{range .Config.Env}}{{println .}}{{end}}' | sed '/^$/d')
mapfile -t entrypoint < <(inspect '{{range .Config.Entrypoint}}{{println .}}{{end}}' | sed '/^$/d')
mapfile -t health < <(inspect '{{range .Config.Healthcheck.Test}}{{println .}}{{end}}' |
  sed '/^$/d' | sed "s/127.0.0.1:8080/127.0.0.1:$ADMIN_PORT/")
[[ "${health[0]}" == CMD ]] || { echo "smoke.sh: no exec-form HEALTHCHECK in the image" >&2; exit 1; }
echo "image $IMAGE_TAG: user $user ($uid:$gid), workdir $workdir"
echo "entrypoint: ${entrypoint[*]}"

mounted=()
cleanup() {
  if [[ -n "${serving:-}" ]]; then
    kill -KILL "$serving" 2>/dev/null || true
    wait "$serving" 2>/dev/null || true
  fi
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
mount -t proc proc "$R/proc" && mounted+=("$R/proc")
mount --bind /dev "$R/dev" && mounted+=("$R/dev")

# In the "container": the image's user, environment and working directory.
# `exec`: started in the background, the job's pid is deno's own, the one SIGTERM goes to.
inside() {
  exec chroot --userspec="$uid:$gid" "$R" /usr/bin/env -i -C "$workdir" "${envs[@]}" HOME="$workdir" "$@"
}
fresh_state() {
  rm -rf "$R/data/runs" "$R/data/pglite"
  install -d -o "$uid" -g "$gid" "$R/data/runs" "$R/data/pglite"
}
result_line() { grep '^{' "$1" | tail -1; }

echo "--- 1. run --once (local profile, demo world)"
fresh_state
set +e
(inside "${entrypoint[@]}" run --once) >"$WORK/once.out" 2>"$WORK/once.err"
code=$?
set -e
line="$(result_line "$WORK/once.out")"
echo "exit $code: $line"
[[ $code == 0 && "$line" == *'"status":"STREAMED"'* ]] ||
  { tail -20 "$WORK/once.err" >&2; echo "smoke.sh: run --once did not stream" >&2; exit 1; }

echo "--- 2. run --admin-port $ADMIN_PORT, HEALTHCHECK, SIGTERM while streaming"
fresh_state
inside "${entrypoint[@]}" run --admin-port "$ADMIN_PORT" >"$WORK/serve.out" 2>"$WORK/serve.err" &
serving=$!
healthy=""
for _ in $(seq 1 120); do
  if (inside "${health[@]:1}") 2>/dev/null && grep -q '"message":"progress"' "$WORK/serve.err"; then
    healthy=yes
    break
  fi
  kill -0 "$serving" 2>/dev/null || break
  sleep 0.5
done  # a deadline of 60 s
[[ -n "$healthy" ]] ||
  { tail -20 "$WORK/serve.err" >&2; echo "smoke.sh: no healthy runtime streaming its READY" >&2; exit 1; }
echo "HEALTHCHECK (${health[*]:1}) passed; events streaming; sending SIGTERM to pid $serving"
kill -TERM "$serving"
set +e
wait "$serving"
code=$?
set -e
serving=""
line="$(result_line "$WORK/serve.out")"
echo "exit $code: $line"
[[ $code == 0 && "$line" == *'"stopped_by":"signal"'* && "$line" != *'"emitted":0,'* ]] ||
  { tail -20 "$WORK/serve.err" >&2; echo "smoke.sh: SIGTERM did not end in a clean drain" >&2; exit 1; }
echo "smoke.sh: OK"
