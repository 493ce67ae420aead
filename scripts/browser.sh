#!/usr/bin/env bash
# Starts (or stops) the headless browser the web UI's tests drive: Debian's Chromium
# behind chromedriver (WebDriver), bound to 127.0.0.1. Installs the packages when
# missing, and Graphviz, which lays run graphs out. `start` prints the environment the
# tests read, for `eval`.
#
#   eval "$(scripts/browser.sh start)"    ...    scripts/browser.sh stop
set -euo pipefail

state=${SLUICE_BROWSER_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/browser}
port=${SLUICE_WEBDRIVER_PORT:-9515}

install() {
    command -v chromedriver >/dev/null && command -v chromium >/dev/null &&
        command -v dot >/dev/null && return
    local sudo=
    [[ $(id -u) == 0 ]] || sudo=sudo
    echo "installing chromium, chromium-driver and graphviz..." >&2
    $sudo apt-get update -qq >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        chromium chromium-driver graphviz fonts-dejavu-core >&2
}

case ${1:-} in
start)
    install
    mkdir -p "$state"
    if ! { [[ -f $state/pid ]] && kill -0 "$(cat "$state/pid")" 2>/dev/null; }; then
        chromedriver --port="$port" --allowed-ips=127.0.0.1 >"$state/log" 2>&1 &
        echo $! >"$state/pid"
        for _ in $(seq 100); do
            curl -s -o /dev/null "http://127.0.0.1:$port/status" && break
            sleep 0.1
        done
        if ! curl -s -o /dev/null "http://127.0.0.1:$port/status"; then
            echo "error: chromedriver on 127.0.0.1:$port did not start; see $state/log" >&2
            exit 1
        fi
    fi
    echo "export SLUICE_TEST_WEBDRIVER=http://127.0.0.1:$port"
    echo "export SLUICE_TEST_CHROMIUM=$(command -v chromium)"
    ;;
stop)
    if [[ -f $state/pid ]]; then
        kill "$(cat "$state/pid")" 2>/dev/null || true
        rm -f "$state/pid"
    fi
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
