# worldstream's container image. Build on a machine with a container engine:
#   docker build -t worldstream .
#   docker build --build-arg DENO_IMAGE=<another Debian-based image with deno 2.9.6 on PATH> .
# Run (the profile by WORLDSTREAM_PROFILE; README "Deploy" lists each profile's variables):
#   docker run --rm -e WORLDSTREAM_PROFILE=local worldstream run --once
# The entrypoint is exec form, so SIGTERM (docker stop) reaches deno itself: `run` drains (the
# run in flight stops at a checkpoint, its lanes deliver what they hold, the WAL reaches
# Postgres) and exits 0.

# The base: Deno 2.9.6 on Debian. Another base may be given; it needs deno on PATH and useradd.
ARG DENO_IMAGE=denoland/deno:debian-2.9.6
FROM ${DENO_IMAGE}

ARG APP_UID=10001

# The state paths are the image's default profile's (`local`, which reads all three) moved onto the
# volumes below: its defaults are relative to /app, which the non-root user cannot write. The
# file control bus (CONTROL_BUS_ROOT) is read by `local` only, where scripts/container/smoke.sh
# streams its demo READY through it; `dev`/`prod`/`local_parity` read the Kinesis stream in
# CONTROL_BUS_STREAM and a Postgres server in DATABASE_URL instead (given with `-e`, no default
# here), and of these three read only WORLDSTREAM_RUNS_ROOT.
ENV DENO_DIR=/deno-dir \
    DENO_NO_UPDATE_CHECK=1 \
    NO_COLOR=1 \
    WORLDSTREAM_PROFILE=local \
    WORLDSTREAM_RUNS_ROOT=/data/runs \
    WORLDSTREAM_PGLITE_DIR=/data/pglite \
    CONTROL_BUS_ROOT=/data/runs/fraud-platform/control_bus

WORKDIR /app

# Dependencies in their own layer: it is rebuilt only when deno.json or deno.lock change.
COPY deno.json deno.lock ./
RUN deno install --frozen

COPY . .

# A non-root user owns the state folders and Deno's cache; the code stays root's, read-only to it.
RUN useradd --system --uid "${APP_UID}" --user-group --home-dir /app --no-create-home worldstream \
  && mkdir -p /data/runs /data/pglite "${DENO_DIR}" \
  && chown -R worldstream:worldstream /data "${DENO_DIR}"
USER worldstream

# The runs root (WAL, checkpoints, receipt keys, ledgers, object cache, the local demo world) and
# the embedded PGlite database: both must outlive the container for a restart to resume.
VOLUME ["/data/runs", "/data/pglite"]

# The admin API (`--admin-port`, below) listens on 127.0.0.1 inside the container only: no port
# is published. Liveness is /healthz on it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["deno", "eval", "--no-config", "const r = await fetch('http://127.0.0.1:8080/healthz'); Deno.exit(r.ok ? 0 : 1)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["deno", "run", "-A", "--frozen", "--v8-flags=--max-old-space-size=256,--max-semi-space-size=4,--heap-growing-percent=100", "main.ts"]
CMD ["run", "--admin-port", "8080"]
