#!/usr/bin/env bash
# Does Diffusion Studio install on every Python found here? `pip install --dry-run` per interpreter.
#   packaging/check_pythons.sh            dry runs (resolution only, nothing installed)
#   REAL=1 packaging/check_pythons.sh     also a real (editable, as the README says) install into a
#                                         throw-away venv per Python,
#                                         then `studio generate` on the demo model
#   PYTHONS="python3.12 /opt/py/bin/python3" packaging/check_pythons.sh   only these interpreters
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${TMPDIR:-/tmp}/studio-check-pythons"
mkdir -p "$WORK"

candidates() {
    if [ -n "${PYTHONS:-}" ]; then
        for p in $PYTHONS; do command -v "$p" || echo "$p"; done
        return
    fi
    for v in 3.9 3.10 3.11 3.12 3.13 3.14; do command -v "python$v"; done
    if [ -n "${PYENV_ROOT:-}${HOME:-}" ]; then
        ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/*/bin/python3 2>/dev/null
    fi
    if command -v uv >/dev/null; then
        uv python list --only-installed --output-format json 2>/dev/null |
            python3 -c 'import json,sys; [print(p["path"]) for p in json.load(sys.stdin) if p.get("path")]' 2>/dev/null
    fi
}

declare -A seen
status=0
while read -r py; do
    [ -x "$py" ] || continue
    # shims (pyenv) are scripts: ask the interpreter who it really is
    info="$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3], sys.executable)' 2>/dev/null)" || continue
    ver="${info%% *}"
    real="$(readlink -f "${info#* }")"
    [ -n "${seen[$real]:-}" ] && continue
    seen[$real]=1
    case "$ver" in 2.*|3.[0-9].*|3.10.*)  # below requires-python (diffusers 0.42 needs 3.11)
        printf '%-8s %-45s %s\n' "$ver" "$py" "not supported (requires-python >=3.11): skipped"
        continue ;;
    esac
    log="$WORK/dry-$ver.log"
    if "$py" -m pip install --dry-run --ignore-installed --disable-pip-version-check "$ROOT" >"$log" 2>&1; then
        result="dry run OK"
    else
        result="FAILS: $(grep -E '^ERROR' "$log" | head -1 | cut -c1-160)"
        status=1
    fi
    if [ "${REAL:-0}" = 1 ] && [ "$result" = "dry run OK" ]; then
        venv="$WORK/venv-$ver"
        rm -rf "$venv" "$WORK/home-$ver"
        mkdir -p "$WORK/home-$ver"
        if "$py" -m venv "$venv" >>"$log" 2>&1 &&
            "$venv/bin/pip" install --disable-pip-version-check -e "$ROOT" >>"$log" 2>&1 &&
            (cd "$WORK" && HOME="$WORK/home-$ver" XDG_DATA_HOME="$WORK/home-$ver/data" \
                "$venv/bin/studio" generate -p "a big red circle on a blue background" \
                --steps 4 --seed 1 --out "$WORK/demo-$ver.png" >>"$log" 2>&1); then
            result="$result; installed; studio generate wrote $WORK/demo-$ver.png"
        else
            result="$result; REAL INSTALL/GENERATE FAILS (see $log)"
            status=1
        fi
    fi
    printf '%-8s %-45s %s\n' "$ver" "$py" "$result"
done < <(candidates)
exit $status
