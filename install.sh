#!/bin/sh
# Install tofu-tui on a test bench (Linux, macOS) with one command:
#
#   curl -fsSL <url>/install.sh | sh -s -- --token TOKEN --url URL
#
# It installs tofu-tui into its own virtual environment under the prefix, links
# `tofu-tui` onto PATH, enrolls the station with the setup token, and installs and
# starts the OS service that runs `tofu-tui --headless` at boot. Re-running it
# upgrades in place; credentials, the upload queue and deployments are kept.
#
# Nothing is half-installed: the new version is built beside the old one and only
# switched to once it works and the station is enrolled; any failure puts back what
# was there before.
#
# Layout: PREFIX/venvs/<stamp>/ (one virtual environment per install),
# PREFIX/current -> venvs/<stamp> (switched atomically), BIN_DIR/tofu-tui -> PREFIX/current/bin/tofu-tui.

set -eu

PROG=install.sh
MIN_PY_MINOR=11

usage() {
	cat <<'EOF'
Usage: install.sh [--token TOKEN] [--url URL] [--no-service] [--from PATH_OR_WHEEL]
                  [--prefix DIR] [--bin-dir DIR] [--python PYTHON]

  --token TOKEN    setup token from the dashboard (or set TOFU_TUI_TOKEN); enrolls the station
  --url URL        the dashboard server's URL
  --no-service     do not install the OS service (run `tofu-tui --headless` yourself)
  --from PATH      install from a source checkout or a wheel (file or URL) instead of the package index
  --prefix DIR     where the program lives (default ~/.local/share/tofu-tui; /opt/tofu-tui as root)
  --bin-dir DIR    where the `tofu-tui` link goes (default ~/.local/bin; /usr/local/bin as root)
  --python PATH    the Python 3.11+ to use (default: the newest python3.x found on PATH)

Packages are installed with uv when it is on PATH (faster), else with pip;
TOFU_TUI_INSTALLER=pip forces pip.

Re-run it to upgrade: credentials, queue and deployments are kept.
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
	warn "$*"
	exit 1
}
usage_error() {
	warn "$*"
	warn "Run 'install.sh --help' for the options."
	exit 2
}

# --- options ----------------------------------------------------------------------
TOKEN="${TOFU_TUI_TOKEN:-}"
URL=""
SERVICE=1
FROM=""
PREFIX=""
BIN_DIR=""
PY="${PYTHON:-}"

need_value() {
	[ "$2" -ge 2 ] || usage_error "$1 needs a value."
}

while [ $# -gt 0 ]; do
	case "$1" in
	--token) need_value "$1" $# && TOKEN="$2" && shift 2 ;;
	--token=*) TOKEN="${1#*=}" && shift ;;
	--url) need_value "$1" $# && URL="$2" && shift 2 ;;
	--url=*) URL="${1#*=}" && shift ;;
	--no-service) SERVICE=0 && shift ;;
	--from) need_value "$1" $# && FROM="$2" && shift 2 ;;
	--from=*) FROM="${1#*=}" && shift ;;
	--prefix) need_value "$1" $# && PREFIX="$2" && shift 2 ;;
	--prefix=*) PREFIX="${1#*=}" && shift ;;
	--bin-dir) need_value "$1" $# && BIN_DIR="$2" && shift 2 ;;
	--bin-dir=*) BIN_DIR="${1#*=}" && shift ;;
	--python) need_value "$1" $# && PY="$2" && shift 2 ;;
	--python=*) PY="${1#*=}" && shift ;;
	-h | --help)
		usage
		exit 0
		;;
	*) usage_error "unknown option: $1" ;;
	esac
done
# The token travels to `tofu-tui login` through the environment only, never argv.
unset TOFU_TUI_TOKEN

if [ "$(id -u)" = 0 ]; then
	PREFIX="${PREFIX:-/opt/tofu-tui}"
	BIN_DIR="${BIN_DIR:-/usr/local/bin}"
else
	[ -n "${HOME:-}" ] || die "HOME is not set: pass --prefix and --bin-dir."
	PREFIX="${PREFIX:-${XDG_DATA_HOME:-$HOME/.local/share}/tofu-tui}"
	BIN_DIR="${BIN_DIR:-$HOME/.local/bin}"
fi

absolute() {
	case "$1" in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$(pwd)" "$1" ;;
	esac
}
PREFIX="$(absolute "$PREFIX")"
BIN_DIR="$(absolute "$BIN_DIR")"

# --- checks that change nothing ---------------------------------------------------
py_ok() {
	"$1" -c "import sys; sys.exit(sys.version_info < (3, $MIN_PY_MINOR))" >/dev/null 2>&1
}

if [ -n "$PY" ]; then
	command -v "$PY" >/dev/null 2>&1 || die "Python not found: $PY does not exist."
	py_ok "$PY" || die "$PY is $("$PY" --version 2>&1 || echo 'not a working Python'); tofu-tui needs Python 3.$MIN_PY_MINOR or newer."
else
	for candidate in python3.14 python3.13 python3.12 python3.11 python3 python; do
		if command -v "$candidate" >/dev/null 2>&1 && py_ok "$candidate"; then
			PY="$(command -v "$candidate")"
			break
		fi
	done
fi
if [ -z "$PY" ]; then
	warn "No Python 3.$MIN_PY_MINOR or newer found on PATH; tofu-tui needs one."
	warn "Get one: Debian 12 / Ubuntu 24.04: sudo apt-get install python3 python3-venv;"
	warn "Fedora/RHEL: sudo dnf install python3.11; macOS: brew install python@3.12;"
	warn "anywhere: https://www.python.org/downloads/ . Then re-run, or pass --python PATH."
	exit 1
fi
if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
	ver="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
	die "$PY cannot make virtual environments (venv/ensurepip missing). On Debian/Ubuntu: sudo apt-get install python$ver-venv"
fi

SPEC="tofu-tui"
case "$FROM" in
http://* | https://*) SPEC="$FROM" && FROM="" ;;
esac
if [ -n "$FROM" ]; then
	[ -e "$FROM" ] || die "--from $FROM: no such file or folder."
	FROM="$(absolute "$FROM")"
	if [ -d "$FROM" ]; then
		[ -f "$FROM/pyproject.toml" ] || die "--from $FROM: not a tofu-tui checkout (no pyproject.toml)."
	else
		case "$FROM" in
		*.whl) ;;
		*) die "--from $FROM: expected a folder (a checkout) or a .whl file." ;;
		esac
	fi
	SPEC="$FROM"
fi

if [ "$SERVICE" = 1 ]; then
	case "$(uname -s)" in
	Linux)
		if ! command -v systemctl >/dev/null 2>&1 || [ ! -d /run/systemd/system ]; then
			die "This machine does not run systemd, so the service cannot be installed. Re-run with --no-service and start 'tofu-tui --headless' with your own supervisor."
		fi
		;;
	Darwin)
		command -v launchctl >/dev/null 2>&1 || die "launchctl not found: re-run with --no-service."
		;;
	*) die "No service support on $(uname -s): re-run with --no-service and start 'tofu-tui --headless' yourself." ;;
	esac
fi

LINK="$BIN_DIR/tofu-tui"
if [ -e "$LINK" ] && [ ! -L "$LINK" ]; then
	die "$LINK exists and is not a link made by this installer. Remove it or pass --bin-dir DIR."
fi

if [ -n "$TOKEN" ] && [ -n "$URL" ]; then
	# Fail before changing anything when the server cannot be reached at all.
	# (Every child gets its input from a heredoc or /dev/null: under `curl | sh` the
	# script itself arrives on standard input.)
	"$PY" - "$URL" <<'EOF' || exit 1
import sys, urllib.error, urllib.request
url = sys.argv[1].rstrip("/")
try:
    urllib.request.urlopen(url + "/api/health", timeout=15).close()
except urllib.error.HTTPError:
    pass  # the server answered: reachable (a cloud dashboard may not have /api/health)
except (urllib.error.URLError, OSError, ValueError) as exc:
    reason = getattr(exc, "reason", exc)
    print(f"install.sh: cannot reach the server at {url} ({reason}). Check --url and the network, then re-run.", file=sys.stderr)
    sys.exit(1)
EOF
fi

# --- build the new version beside the old one -------------------------------------
PREFIX_EXISTED=0
[ -d "$PREFIX" ] && PREFIX_EXISTED=1
mkdir -p "$PREFIX/venvs" || die "cannot create $PREFIX: pass a writable --prefix."
LOCK="$PREFIX/.install.lock"
if ! mkdir "$LOCK" 2>/dev/null; then
	# A lock whose installer is gone (killed) is stale: take it over.
	holder="$(cat "$LOCK/pid" 2>/dev/null || echo)"
	if [ -n "$holder" ] && kill -0 "$holder" 2>/dev/null; then
		die "another install (process $holder) is running in $PREFIX; wait for it to finish."
	fi
	rm -rf "$LOCK"
	mkdir "$LOCK" 2>/dev/null || die "cannot lock $PREFIX (remove $LOCK if no install is running)."
fi
echo $$ >"$LOCK/pid"

OLD=""
[ -L "$PREFIX/current" ] && OLD="$(readlink "$PREFIX/current")"
LINK_EXISTED=0
[ -L "$LINK" ] && LINK_EXISTED=1
STAMP="$(date +%Y%m%d%H%M%S)-$$"
NEW="$PREFIX/venvs/$STAMP"
LOG="$(mktemp "${TMPDIR:-/tmp}/tofu-tui-install.XXXXXX")"
SWITCHED=0
DONE=0
ENROLLED=0

cleanup() {
	status=$?
	if [ "$DONE" != 1 ]; then
		if [ "$SWITCHED" = 1 ]; then
			if [ -n "$OLD" ]; then
				rm -f "$PREFIX/current.back"
				ln -s "$OLD" "$PREFIX/current.back" && "$PY" -c 'import os, sys; os.replace(sys.argv[1], sys.argv[2])' "$PREFIX/current.back" "$PREFIX/current"
			else
				rm -f "$PREFIX/current"
			fi
			[ "$LINK_EXISTED" = 1 ] || rm -f "$LINK"
		fi
		rm -rf "$NEW"
		rm -rf "$LOCK"
		rmdir "$PREFIX/venvs" 2>/dev/null || true
		[ "$PREFIX_EXISTED" = 1 ] || rmdir "$PREFIX" 2>/dev/null || true
		[ "$status" = 0 ] && status=1
		warn "Nothing was changed: the previous installation (if any) is as it was."
		if [ "$ENROLLED" = 1 ]; then
			warn "The station did enroll with the new token (its new key is saved); re-run without --token once the cause is fixed."
		fi
	else
		rm -rf "$LOCK"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "Installing tofu-tui with $("$PY" --version 2>&1) into $PREFIX"
# uv, when present, installs the same packages several times faster than pip.
UV=""
if [ "${TOFU_TUI_INSTALLER:-auto}" != pip ]; then
	if command -v uv >/dev/null 2>&1; then
		UV="$(command -v uv)"
	elif [ -x "$PREFIX/current/bin/uv" ]; then
		# An upgrade: the installed tofu-tui ships uv (it builds procedure environments).
		UV="$PREFIX/current/bin/uv"
	fi
fi
if [ -n "$UV" ]; then
	say "Using uv ($UV) to install packages (TOFU_TUI_INSTALLER=pip to use pip and its config)"
	# uv does not read pip's settings: carry over the index a bench was pointed at.
	if [ -n "${PIP_INDEX_URL:-}" ] && [ -z "${UV_INDEX_URL:-}" ]; then export UV_INDEX_URL="$PIP_INDEX_URL"; fi
	if [ -n "${PIP_EXTRA_INDEX_URL:-}" ] && [ -z "${UV_EXTRA_INDEX_URL:-}" ]; then export UV_EXTRA_INDEX_URL="$PIP_EXTRA_INDEX_URL"; fi
	if [ -n "${PIP_FIND_LINKS:-}" ] && [ -z "${UV_FIND_LINKS:-}" ]; then export UV_FIND_LINKS="$PIP_FIND_LINKS"; fi
	"$PY" -m venv --without-pip "$NEW" </dev/null >"$LOG" 2>&1 || VENV_FAILED=1
else
	"$PY" -m venv "$NEW" </dev/null >"$LOG" 2>&1 || VENV_FAILED=1
fi
if [ "${VENV_FAILED:-0}" = 1 ]; then
	cat "$LOG" >&2
	die "could not create a virtual environment in $NEW."
fi
say "Downloading and installing tofu-tui and its dependencies (log: $LOG)"
if [ -n "$UV" ]; then
	set -- "$UV" pip install --python "$NEW/bin/python" "$SPEC"
else
	set -- "$NEW/bin/python" -m pip install --disable-pip-version-check --no-input "$SPEC"
fi
if ! "$@" </dev/null >>"$LOG" 2>&1; then
	if grep -Eqi 'NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|Name or service not known|nodename nor servname|Network is unreachable|ConnectTimeout|Read timed out|ProxyError|SSLError|Connection refused|Could not fetch URL|error sending request|dns error|failed to lookup address|tcp connect error|Failed to fetch' "$LOG"; then
		die "cannot reach the package index (${PIP_INDEX_URL:-${UV_INDEX_URL:-https://pypi.org/simple}}) to download tofu-tui and its dependencies. Check the network or proxy (HTTPS_PROXY), or install --from a wheel. Log: $LOG"
	fi
	if grep -Eqi 'No matching distribution found|Could not find a version|No solution found' "$LOG"; then
		die "the package index has no matching tofu-tui (or dependency) for $("$PY" --version 2>&1) on this platform, or cannot be reached. Log: $LOG"
	fi
	tail -n 8 "$LOG" >&2
	die "could not install tofu-tui (last lines above). Log: $LOG"
fi
VERSION="$("$NEW/bin/tofu-tui" --version </dev/null 2>>"$LOG")" || die "the new tofu-tui does not start. Log: $LOG"

if [ -n "$TOKEN" ]; then
	say "Enrolling this station"
	if [ -n "$URL" ]; then
		TOFU_TUI_TOKEN="$TOKEN" "$NEW/bin/tofu-tui" login --url "$URL" </dev/null ||
			die "enrollment failed (the reason is above). Get a fresh setup token from the dashboard and re-run."
	else
		TOFU_TUI_TOKEN="$TOKEN" "$NEW/bin/tofu-tui" login </dev/null ||
			die "enrollment failed (the reason is above). Get a fresh setup token from the dashboard and re-run."
	fi
	ENROLLED=1
fi

# --- switch to it -----------------------------------------------------------------
rm -f "$PREFIX/current.new" "$PREFIX/current.back"
ln -s "venvs/$STAMP" "$PREFIX/current.new"
SWITCHED=1
"$PY" -c 'import os, sys; os.replace(sys.argv[1], sys.argv[2])' "$PREFIX/current.new" "$PREFIX/current"
mkdir -p "$BIN_DIR" || die "cannot create $BIN_DIR: pass a writable --bin-dir."
rm -f "$LINK.new"
ln -s "$PREFIX/current/bin/tofu-tui" "$LINK.new" && mv -f "$LINK.new" "$LINK"

if [ "$SERVICE" = 1 ]; then
	say "Installing the service"
	if ! "$PREFIX/current/bin/tofu-tui" service install --executable "$PREFIX/current/bin/tofu-tui" </dev/null; then
		if [ -n "$OLD" ]; then
			rm -f "$PREFIX/current.back"
			ln -s "$OLD" "$PREFIX/current.back" && "$PY" -c 'import os, sys; os.replace(sys.argv[1], sys.argv[2])' "$PREFIX/current.back" "$PREFIX/current"
			SWITCHED=0
			"$PREFIX/current/bin/tofu-tui" service start </dev/null >/dev/null 2>&1 || true
		fi
		die "the service could not be installed (the reason is above)."
	fi
fi

DONE=1
for venv in "$PREFIX"/venvs/*; do
	[ "$venv" = "$NEW" ] || rm -rf "$venv"
done
printf '%s\n' "$LINK" >"$PREFIX/.tofu-tui-install"
rm -f "$LOG"

say "Installed $VERSION in $PREFIX."
case ":${PATH:-}:" in
*":$BIN_DIR:"*) ;;
*) say "Note: $BIN_DIR is not on your PATH. Add it, e.g.: echo 'export PATH=\"$BIN_DIR:\$PATH\"' >> ~/.profile" ;;
esac
if [ -n "$TOKEN" ]; then
	say "Check the station with: tofu-tui whoami"
else
	say "Enroll the station with: TOFU_TUI_TOKEN=<setup token> tofu-tui login --url <server>"
fi
[ "$SERVICE" = 1 ] || say "The service was not installed; run 'tofu-tui service install' or 'tofu-tui --headless'."
