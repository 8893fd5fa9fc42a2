# Shared set-up for scripts/demo.sh and scripts/test.sh (sourced, not run).
#
# Makes a virtual environment in .venv with the system's python3 (PEP 668:
# Debian's python3 refuses installs into the system) and installs reconciler
# into it. Anything missing from the system is installed with apt-get when
# running as root; otherwise the script says what to install and stops.
# Every step stops the script on failure (the callers use `set -euo pipefail`).

VENV=${RECONCILER_VENV:-.venv}
PYTHON=${PYTHON:-python3}

fail() {
    echo "error: $*" >&2
    exit 1
}

# install_debian_packages PACKAGE… — installs the packages that are missing.
install_debian_packages() {
    local missing=() package
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed"; then
            missing+=("$package")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        fail "missing system packages: ${missing[*]} — this is not a Debian/Ubuntu system;" \
             "install the equivalents with your package manager and run this again"
    fi
    if [ "$(id -u)" -ne 0 ]; then
        fail "missing Debian packages: ${missing[*]} — install them as root" \
             "(sudo apt-get install ${missing[*]}) and run this again"
    fi
    echo "Installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
}

# make_venv — creates .venv (once) and checks it has a working pip.
make_venv() {
    command -v "$PYTHON" >/dev/null 2>&1 ||
        fail "$PYTHON not found — install Python 3.11 or newer (Debian: apt-get install python3)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        fail "reconciler needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)"
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        return 0
    fi
    if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        # Debian ships venv's pip bootstrap separately, as python3-venv.
        install_debian_packages python3-venv
    fi
    rm -rf "$VENV"
    echo "Creating the virtual environment $VENV"
    "$PYTHON" -m venv "$VENV" || fail "could not create $VENV with $PYTHON -m venv"
}

# install_reconciler [EXTRA] — pip install -e .[EXTRA] into the venv, skipped
# when pyproject.toml has not changed since the last successful install.
install_reconciler() {
    local spec="." stamp="$VENV/.installed" wanted
    [ -n "${1:-}" ] && spec=".[$1]"
    wanted="$spec $(sha256sum pyproject.toml | cut -d' ' -f1)"
    # A test install (.[test]) also serves the demo (.).
    if [ -f "$stamp" ] && { grep -qxF "$wanted" "$stamp" ||
            { [ "$spec" = "." ] && grep -q " ${wanted#* }\$" "$stamp"; }; }; then
        return 0
    fi
    echo "Installing reconciler ($spec) into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec"
    echo "$wanted" >>"$stamp"
}

# install_ajv — the test-only ajv-cli (pinned in tests/ajv/package-lock.json)
# into tests/ajv/node_modules, skipped when the lock file has not changed.
install_ajv() {
    local stamp=tests/ajv/node_modules/.installed wanted
    wanted=$(sha256sum tests/ajv/package-lock.json | cut -d' ' -f1)
    [ -f "$stamp" ] && grep -qxF "$wanted" "$stamp" && return 0
    echo "Installing ajv-cli (tests only) into tests/ajv/node_modules"
    npm ci --prefix tests/ajv --no-audit --no-fund --loglevel=error ||
        fail "npm could not install ajv-cli into tests/ajv (needs the npm registry)"
    echo "$wanted" >"$stamp"
}
