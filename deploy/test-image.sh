#!/usr/bin/env bash
# Builds edgeflow's container image with buildah (no Docker daemon needed) and checks it the way an
# orchestrator would use it: image settings (non-root user, entrypoint, port, stop signal, health
# check) and files; then, with an operator's settings (deploy/systemd/edgeflow.env.example),
# `edgeflow config check` inside the image, and in a private network namespace the image's own
# ENTRYPOINT + CMD with the image's own HEALTHCHECK command run beside it until healthy, the
# worker's uid read from /proc, /readyz refused until a Temporal dev server starts and passing
# after, the image's STOPSIGNAL ending the worker with exit 0, the health check failing after, and
# the worker's database written to /var/lib/edgeflow as the non-root user.
#
#   deploy/test-image.sh          the Dockerfile's runtime stage, with a binary built outside
#                                 ($EDGEFLOW_BIN, default target/debug/edgeflow, debug info
#                                 stripped to keep the layer small). About 20 s.
#   deploy/test-image.sh --full   the whole Dockerfile, release build inside the image. Tens of
#                                 minutes on 2 cores; not part of the default test run.
#
# Needs root on Debian 12, buildah, iproute2, the temporal CLI (scripts/setup installs it, in
# .tools/venv or $EDGEFLOW_TEMPORAL_CLI), and for the base images apt-get and (--full) debootstrap.
# No registry is reachable here, so base images are made locally under the names the Dockerfile's
# FROM lines use:
#   gcr.io/distroless/cc-debian12:nonroot  from the Debian 12 packages that image is built from
#                                          (libc6, libgcc-s1, libstdc++6, libgomp1, libssl3,
#                                          ca-certificates, tzdata, netbase, base-files) plus its
#                                          passwd/group with `nonroot` (65532). No shell, as in the
#                                          real one, so the health check is shown to need none.
#   rust:<version>-slim-bookworm (--full)  debootstrap minbase + gcc + this machine's toolchain.
# Image storage lives in a temporary folder that is removed afterwards.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
full=false
case "${1:-}" in
  --full) full=true ;;
  "") ;;
  *) echo "usage: $0 [--full]" >&2; exit 64 ;;
esac

say() { printf '[image] %s\n' "$*" >&2; }
fail() { printf '[image] FAILED: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

[ "$(id -u)" = 0 ] || fail "needs root (buildah's chroot isolation, network namespaces)"
for tool in buildah ip dpkg-deb apt-get; do
  command -v "$tool" >/dev/null || fail "$tool not found (scripts/setup installs buildah and iproute2)"
done
$full && { command -v debootstrap >/dev/null || fail "debootstrap not found"; }
temporal_cli="${EDGEFLOW_TEMPORAL_CLI:-$root/.tools/venv/bin/temporal}"
[ -x "$temporal_cli" ] || fail "no temporal CLI at $temporal_cli (scripts/setup installs it)"
# The runtime base is made from this machine's Debian 12 packages (and the binary it is tested
# with was linked against this machine's glibc).
[ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" = bookworm ] || fail "needs a Debian 12 (bookworm) machine"

work="$(mktemp -d "${TMPDIR:-/tmp}/edgeflow-image.XXXXXX")"
netns="edgeflow-image-$$"
worker_pid=""
# chroot isolation: buildah's default OCI runtime fails here ("cgroups in hybrid mode not supported").
export BUILDAH_ISOLATION=chroot
B() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver overlay "$@"; }
cleanup() {
  local rc=$? pids
  set +e
  # Whatever still runs in the namespace was started here (buildah, the worker): TERM, then KILL.
  for sig in TERM TERM TERM KILL; do
    pids="$(ip netns pids "$netns" 2>/dev/null)"
    [ -n "$pids" ] || break
    kill -s "$sig" $pids 2>/dev/null
    sleep 1
  done
  [ -n "$worker_pid" ] && wait "$worker_pid" 2>/dev/null
  ip netns del "$netns" 2>/dev/null
  B rm --all >/dev/null 2>&1
  B rmi --all --force >/dev/null 2>&1
  grep -o " $work/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT INT TERM

# --- base images --------------------------------------------------------------------------------
dockerfile="$root/Dockerfile"
runtime_base="$(awk 'toupper($1) == "FROM" && toupper($3) == "AS" && $4 == "runtime" { print $2 }' "$dockerfile")"
[ -n "$runtime_base" ] || fail "no 'FROM <image> AS runtime' stage in the Dockerfile"

make_distroless_cc() { # $1: image name
  local rootfs="$work/distroless" debs="$work/debs"
  mkdir -p "$rootfs" "$debs"
  local pkgs=(base-files netbase tzdata ca-certificates libc6 libgcc-s1 gcc-12-base libgomp1 libstdc++6 libssl3)
  if ! (cd "$debs" && apt-get download -q=2 "${pkgs[@]}" 2>/dev/null); then
    apt-get update -qq
    (cd "$debs" && apt-get download -q=2 "${pkgs[@]}" 2>/dev/null)
  fi
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$rootfs"; done
  # What distroless adds to the packages: one CA bundle, users, and no package database.
  mkdir -p "$rootfs/etc/ssl/certs"
  cat "$rootfs"/usr/share/ca-certificates/mozilla/*.crt > "$rootfs/etc/ssl/certs/ca-certificates.crt"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' > "$rootfs/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' 'nonroot:x:65532:' > "$rootfs/etc/group"
  echo 'hosts: files dns' > "$rootfs/etc/nsswitch.conf"
  install -d -m 1777 "$rootfs/tmp"
  install -d -m 0700 "$rootfs/root"
  install -d -m 0700 -o 65532 -g 65532 "$rootfs/home/nonroot"
  [ ! -e "$rootfs/bin/sh" ] || fail "the distroless stand-in has a shell"
  import_rootfs "$rootfs" "$1" --user 65532 --workingdir /home/nonroot \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
}

make_rust_builder() { # $1: image name, e.g. rust:1.95-slim-bookworm
  local rootfs="$work/rust" toolchain
  debootstrap --variant=minbase --include=ca-certificates,gcc,libc6-dev bookworm "$rootfs" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
  # No toolchain can be downloaded here: bring this machine's (rustc finds its sysroot next to
  # its own binary), laid out like the official image (CARGO_HOME=/usr/local/cargo).
  toolchain="$(rustc --print sysroot)"
  mkdir -p "$rootfs/usr/local/rust" "$rootfs/usr/local/cargo/bin"
  cp -a "$toolchain/bin" "$toolchain/lib" "$toolchain/libexec" "$rootfs/usr/local/rust/" 2>/dev/null ||
    cp -a "$toolchain/bin" "$toolchain/lib" "$rootfs/usr/local/rust/"
  for exe in "$rootfs"/usr/local/rust/bin/*; do
    ln -s "/usr/local/rust/bin/$(basename "$exe")" "$rootfs/usr/local/cargo/bin/$(basename "$exe")"
  done
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  import_rootfs "$rootfs" "$1" --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
}

import_rootfs() { # $1: folder, $2: image name, rest: `buildah config` options
  local rootfs="$1" name="$2" ctr; shift 2
  tar --numeric-owner -C "$rootfs" -cf "$rootfs.tar" .
  ctr="$(B from scratch)"
  B add "$ctr" "$rootfs.tar" / >/dev/null
  B config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@" "$ctr"
  B commit --quiet --rm "$ctr" "$name" >/dev/null
  rm -rf "$rootfs" "$rootfs.tar"
}

t="$(now)"
make_distroless_cc "$runtime_base"
say "base image $runtime_base made from Debian packages in $(since "$t")"

# --- build --------------------------------------------------------------------------------------
image=localhost/edgeflow:image-test
if $full; then
  rust_version="$(awk -F= '/^ARG RUST_VERSION=/ { print $2 }' "$dockerfile")"
  builder_base="rust:${rust_version}-slim-bookworm"
  t="$(now)"
  make_rust_builder "docker.io/library/$builder_base"
  say "base image $builder_base made with debootstrap in $(since "$t")"
  t="$(now)"
  # RUN steps fetch crates and Debian packages: give them this machine's CA bundle. The build's
  # own output is shown as it goes (it takes long), each step stamped with the time.
  if ! B bud --format docker --pull=never -t "$image" \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    -f "$dockerfile" "$root" 2>&1 | while IFS= read -r line; do
      case "$line" in *STEP*|*COMMIT*) printf '[image %s] %s\n' "$(date +%T)" "$line" ;; *) printf '%s\n' "$line" ;; esac
    done >&2; then
    fail "buildah bud (full)"
  fi
  say "full Dockerfile built (release build inside) in $(since "$t")"
else
  bin="${EDGEFLOW_BIN:-$root/target/debug/edgeflow}"
  [ -x "$bin" ] || fail "$bin not found: run cargo build first, or set EDGEFLOW_BIN"
  ctx="$work/context"
  mkdir -p "$ctx/state"
  cp -r "$root/config" "$ctx/config"
  objcopy --strip-debug "$bin" "$ctx/edgeflow" 2>/dev/null || cp "$bin" "$ctx/edgeflow"
  # The Dockerfile's runtime stage verbatim, after a stand-in `builder` stage that provides the
  # same /out/ as the real one (the binary and an empty state folder).
  awk '$0 ~ /^FROM .* AS runtime$/ { p = 1 } p && /--from=/ && !(/--from=builder / && / \/out\//)' "$dockerfile" |
    grep -q . && fail "the runtime stage takes something from another stage besides builder's /out/"
  {
    awk 'toupper($1) == "FROM" { exit } toupper($1) == "ARG"' "$dockerfile"
    printf '%s\n' 'FROM scratch AS builder' 'COPY edgeflow /out/edgeflow' 'COPY state/ /out/state/'
    awk '$0 ~ /^FROM .* AS runtime$/ { p = 1 } p' "$dockerfile"
  } >"$ctx/Containerfile"
  t="$(now)"
  B bud --format docker --pull=never --quiet -t "$image" -f "$ctx/Containerfile" "$ctx" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "buildah bud (runtime stage)"; }
  say "runtime stage built with $(basename "$bin") from outside in $(since "$t")"
fi
say "image size: $(B images --format '{{.Size}}' "$image")"

# --- the image's settings -----------------------------------------------------------------------
inspect() { B inspect --type image --format "$1" "$image"; }
user="$(inspect '{{.Docker.Config.User}}')"
case "${user%%:*}" in
  "" | 0 | root) fail "image runs as root (USER '$user')" ;;
  *[!0-9]*) fail "USER '$user' is not numeric (orchestrators cannot check runAsNonRoot)" ;;
esac
[ "$(inspect '{{range .Docker.Config.Entrypoint}}{{println .}}{{end}}')" = edgeflow ] || fail "ENTRYPOINT is not [\"edgeflow\"]"
[ "$(inspect '{{range .Docker.Config.Cmd}}{{println .}}{{end}}')" = worker ] || fail "CMD is not [\"worker\"]"
[ "$(inspect '{{.Docker.Config.StopSignal}}')" = SIGTERM ] || fail "STOPSIGNAL is not SIGTERM"
inspect '{{range $p, $_ := .Docker.Config.ExposedPorts}}{{$p}} {{end}}' | grep -qw 9464/tcp || fail "port 9464 not exposed"
envs="$(inspect '{{range .Docker.Config.Env}}{{println .}}{{end}}')"
grep -qx 'EDGEFLOW_ENV=production' <<<"$envs" || fail "EDGEFLOW_ENV=production not set"
config_dir="$(sed -n 's/^EDGEFLOW_CONFIG_DIR=//p' <<<"$envs")"
[ -n "$config_dir" ] || fail "EDGEFLOW_CONFIG_DIR not set"
mapfile -t health < <(inspect '{{range .Docker.Config.Healthcheck.Test}}{{println .}}{{end}}')
[ "${health[0]:-}" = CMD ] || fail "HEALTHCHECK missing or not in exec form (a distroless image has no shell): ${health[*]:-none}"
health=("${health[@]:1}")
mapfile -t run_cmd < <(inspect '{{range .Docker.Config.Entrypoint}}{{println .}}{{end}}{{range .Docker.Config.Cmd}}{{println .}}{{end}}')
stop_signal="$(inspect '{{.Docker.Config.StopSignal}}')"
say "settings: USER $user, ENTRYPOINT+CMD '${run_cmd[*]}', HEALTHCHECK '${health[*]}', EDGEFLOW_CONFIG_DIR $config_dir"

# --- the image's files --------------------------------------------------------------------------
worker_ctr="$(B from --pull-never --name edgeflow-worker "$image")"
probe_ctr="$(B from --pull-never --name edgeflow-probe "$image")"
mnt="$(B mount "$worker_ctr")"
for f in default.toml production.toml; do
  [ -f "$mnt$config_dir/$f" ] || fail "$config_dir/$f missing from the image"
done
bin_in_image="$mnt/usr/local/bin/edgeflow"
[ "$(stat -c %u "$bin_in_image")" = 0 ] && [ "$(( 0$(stat -c %a "$bin_in_image") & 022 ))" = 0 ] ||
  fail "/usr/local/bin/edgeflow must be root-owned and not writable by the worker's user"
[ "$(stat -c %u "$mnt/var/lib/edgeflow")" = "${user%%:*}" ] || fail "/var/lib/edgeflow is not owned by the image's user"
B umount "$worker_ctr" >/dev/null
say "files: config in $config_dir, binary root-owned, /var/lib/edgeflow owned by ${user%%:*}"

# --- an operator's settings ----------------------------------------------------------------------
# What an operator adds to the image: the uncommented lines of deploy/systemd/edgeflow.env.example
# (the same settings however edgeflow runs), each file they name mounted with dummy content, and
# the Temporal address pointed at this test's server.
printf 'not-a-real-key\n' >"$work/secret"
chmod 0644 "$work/secret"
settings=() mounts=()
while IFS= read -r line; do
  case "$line" in EDGEFLOW__*=*) ;; *) continue ;; esac
  key="${line%%=*}" value="${line#*=}"
  case "$value" in /*) mounts+=(-v "$work/secret:$value:ro") ;; esac
  [ "$key" = EDGEFLOW__TEMPORAL__ADDRESS ] && value=http://127.0.0.1:7233
  settings+=(--env "$key=$value")
done <"$root/deploy/systemd/edgeflow.env.example"

B run "${settings[@]}" "${mounts[@]}" "$probe_ctr" -- edgeflow config check >"$work/config-check.log" 2>&1 ||
  { cat "$work/config-check.log" >&2; fail "edgeflow config check fails inside the image"; }
say "edgeflow config check passes with the image's settings plus edgeflow.env.example's"

# --- run it -------------------------------------------------------------------------------------
# A private network namespace, so ports 9464 and 7233 are the test's own whatever runs on this
# machine; both containers join it, as `docker exec` of the health check would.
ip netns add "$netns"
ip netns exec "$netns" ip link set lo up
in_ns() { ip netns exec "$netns" "$@"; }
probe() { in_ns buildah --root "$work/storage" --runroot "$work/run" --storage-driver overlay \
  run "$probe_ctr" -- "$@" >>"$work/probe.log" 2>&1; }
wait_for() { # $1: seconds, rest: a probe that must pass by then
  local deadline=$(( $(date +%s) + $1 )); shift
  while [ "$(date +%s)" -lt "$deadline" ]; do
    kill -0 "$worker_pid" 2>/dev/null || { cat "$work/worker.log" >&2; fail "the worker exited"; }
    probe "$@" && return 0
    sleep 0.5
  done
  return 1
}
readyz=()
for word in "${health[@]}"; do
  case "$word" in */healthz) readyz+=("${word%/healthz}/readyz") ;; *) readyz+=("$word") ;; esac
done
[ "${readyz[*]}" != "${health[*]}" ] || fail "the HEALTHCHECK does not probe /healthz: ${health[*]}"

# The worker first, Temporal later, as happens when both start at once.
t="$(now)"
in_ns buildah --root "$work/storage" --runroot "$work/run" --storage-driver overlay \
  run "${settings[@]}" "${mounts[@]}" "$worker_ctr" -- "${run_cmd[@]}" >"$work/worker.log" 2>&1 &
worker_pid=$!
wait_for 30 "${health[@]}" || { tail -n 20 "$work/worker.log" "$work/probe.log" >&2; fail "the HEALTHCHECK never passed"; }
say "HEALTHCHECK passes $(since "$t") after the worker started"

edgeflow_pid=""
for p in $(ip netns pids "$netns"); do
  [ "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" = "/usr/local/bin/edgeflow ${run_cmd[*]:1} " ] && edgeflow_pid=$p
done
[ -n "$edgeflow_pid" ] || fail "cannot find the worker process"
uid="$(awk '/^Uid:/ { print $2 }' "/proc/$edgeflow_pid/status")"
[ "$uid" = "${user%%:*}" ] && [ "$uid" != 0 ] || fail "the worker runs as uid $uid, not ${user%%:*}"
say "the worker runs as uid $uid"
grep -q '^{' "$work/worker.log" || { head -3 "$work/worker.log" >&2; fail "production logs are not JSON"; }

if probe "${readyz[@]}"; then fail "/readyz answered 2xx with no Temporal server"; fi
say "edgeflow health on /readyz fails while there is no Temporal server, as it should"

t="$(now)"
in_ns "$temporal_cli" server start-dev --headless --ip 127.0.0.1 --port 7233 --http-port 7243 \
  --ui-port 8233 --metrics-port 7244 --log-level warn >"$work/temporal.log" 2>&1 &
wait_for 90 "${readyz[@]}" ||
  { tail -n 20 "$work/worker.log" "$work/temporal.log" >&2; fail "/readyz never passed with Temporal up"; }
say "/readyz passes $(since "$t") after Temporal started: connected, polling, database open"

t="$(now)"
kill -s "${stop_signal#SIG}" "$edgeflow_pid"
rc=0; wait "$worker_pid" || rc=$?
worker_pid=""
[ "$rc" = 0 ] || { tail -n 20 "$work/worker.log" >&2; fail "the worker exited $rc on $stop_signal"; }
say "$stop_signal: the worker drained and exited 0 in $(since "$t")"
if probe "${health[@]}"; then fail "the HEALTHCHECK still passes with the worker stopped"; fi
say "the HEALTHCHECK fails once the worker is gone"

mnt="$(B mount "$worker_ctr")"
state="$(cd "$mnt/var/lib/edgeflow" && find . -mindepth 1 -printf '%P(%u) ')"
[ -n "$state" ] || fail "the worker wrote nothing to /var/lib/edgeflow"
[ -z "$(find "$mnt/var/lib/edgeflow" -mindepth 1 ! -uid "$uid")" ] || fail "state not owned by $uid: $state"
B umount "$worker_ctr" >/dev/null
say "state written to /var/lib/edgeflow as uid $uid: $state"
say "image test passed"
