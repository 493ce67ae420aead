#!/usr/bin/env bash
# Starts (or stops) the two local OCI registries the test suite pushes to and pulls from:
# the CNCF distribution registry from Debian's `docker-registry` package, bound to
# 127.0.0.1 — one anonymous, one behind htpasswd basic auth. Installs the packages when
# missing. `start` prints the environment the tests read, for `eval`.
#
#   eval "$(scripts/registries.sh start)"    ...    scripts/registries.sh stop
set -euo pipefail

state=${SLUICE_REGISTRY_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/registries}
open_port=${SLUICE_REGISTRY_PORT:-5050}
auth_port=$((open_port + 1))
user=sluice
password=sluice-test-password

install() {
    command -v docker-registry >/dev/null && command -v htpasswd >/dev/null && return
    local sudo=
    [[ $(id -u) == 0 ]] || sudo=sudo
    echo "installing docker-registry and apache2-utils..." >&2
    $sudo apt-get update -qq >&2
    # No service is started for us: a package's own registry would listen on :5000.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry apache2-utils >&2
}

config() { # name port [auth]
    local dir=$state/$1
    mkdir -p "$dir/data"
    {
        echo "version: 0.1"
        echo "log: {level: error}"
        echo "storage:"
        echo "  filesystem: {rootdirectory: $dir/data}"
        echo "  delete: {enabled: true}"
        echo "http:"
        echo "  addr: 127.0.0.1:$2"
        if [[ ${3:-} == auth ]]; then
            echo "auth:"
            echo "  htpasswd: {realm: sluice-test, path: $dir/htpasswd}"
        fi
    } >"$dir/config.yml"
    if [[ ${3:-} == auth ]]; then
        htpasswd -Bbn "$user" "$password" >"$dir/htpasswd"
    fi
}

start_one() { # name port
    local dir=$state/$1
    if [[ -f $dir/pid ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        return
    fi
    docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$2/v2/"; then
            return
        fi
        sleep 0.1
    done
    echo "error: the registry on 127.0.0.1:$2 did not start; see $dir/log" >&2
    cat "$dir/log" >&2
    exit 1
}

case ${1:-} in
start)
    install
    config open "$open_port"
    config auth "$auth_port" auth
    start_one open "$open_port"
    start_one auth "$auth_port"
    echo "export SLUICE_TEST_REGISTRY=127.0.0.1:$open_port"
    echo "export SLUICE_TEST_AUTH_REGISTRY=127.0.0.1:$auth_port"
    echo "export SLUICE_TEST_REGISTRY_USER=$user"
    echo "export SLUICE_TEST_REGISTRY_PASSWORD=$password"
    # The anonymous registry's storage, which a test alters to serve tampered bytes.
    echo "export SLUICE_TEST_REGISTRY_DATA=$state/open/data"
    ;;
stop)
    for name in open auth; do
        if [[ -f $state/$name/pid ]]; then
            kill "$(cat "$state/$name/pid")" 2>/dev/null || true
            rm -f "$state/$name/pid"
        fi
    done
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
