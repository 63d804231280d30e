# shellcheck shell=bash
# scripts/lib.sh: shared set-up helpers for scripts/test, scripts/demo and .ci/run.
#
# Source it from bash (works under `set -euo pipefail`):
#
#   source scripts/lib.sh
#   ensure_venv                    # .venv with Python >= 3.12 and `pip install -e ".[test]"`
#   ensure_min_venv                # .venv-min: Python 3.12, Django 5.2 and every declared floor
#   start_postgres OMNITENANT_PG   # throwaway PostgreSQL cluster; exports OMNITENANT_PG_{HOST,PORT,PID,DIR}
#   start_redis                    # throwaway Redis; exports OMNITENANT_REDIS_URL (if Redis is available)
#   start_pgbouncer transaction    # throwaway PgBouncer in front of OMNITENANT_PG; exports
#                                  # OMNITENANT_PGBOUNCER_TX_PORT (session: ..._SESSION_PORT)
#   bench_prelude                  # a benchmark's .venv, wrk and PostgreSQL (bench/run_*.sh)
#   bench_pgbouncer                # ... and a PgBouncer in transaction mode in front of it
#
# Everything started here is stopped by `cleanup`, which is installed as the EXIT/INT/TERM
# trap. It only stops processes whose pids it recorded, and only removes the temp dirs it made.
#
# For debugging, the file can also run one function directly, e.g. `bash scripts/lib.sh find_python`.
#
# Environment knobs:
#   OMNITENANT_PYTHON     interpreter to build .venv with (must be >= 3.12)
#   OMNITENANT_PG_BINDIR  directory holding initdb/pg_ctl/postgres (default: PostgreSQL 15's)

# Repository root: this file lives in <root>/scripts/.
OT_ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
OT_VENV="$OT_ROOT/.venv"

# What cleanup must undo. Arrays are parallel where noted.
_OT_PIDS=()        # background processes (redis, uvicorn, ...) to TERM/KILL
_OT_PG_DATA=()     # PostgreSQL data dirs ...
_OT_PG_PIDS=()     # ... their postmaster pids ...
_OT_PG_BINDIRS=()  # ... and the pg_ctl that goes with them
_OT_TMPDIRS=()     # temp dirs to delete last
_OT_APT_UPDATED=""
_OT_AS_PG=()       # command prefix that runs as the cluster owner (see _ot_pg_prefix)
_OT_DETACH=()      # command prefix that detaches a server from our session

ot_log() { printf '==> %s\n' "$*" >&2; }
ot_warn() { printf 'WARNING: %s\n' "$*" >&2; }
ot_err() { printf 'ERROR: %s\n' "$*" >&2; }

# --------------------------------------------------------------------------------------------
# Python / virtualenv
# --------------------------------------------------------------------------------------------

# True if "$1" runs and is Python >= 3.12. pyenv shims exist on PATH but fail unless their
# version is selected, so presence alone proves nothing: actually run it.
_ot_python_ok() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1
}

# Print existing paths matching the given globs, newest version first.
_ot_glob_newest_first() {
    local p
    for p in "$@"; do
        [[ -e $p ]] && printf '%s\n' "$p"
    done | sort -rV
}

# _ot_denied_dir PATH: print the first directory on the way to PATH that we may not enter.
_ot_denied_dir() {
    local dir="$1"
    local -a chain=()
    [[ $dir == /* ]] || dir="$PWD/$dir"
    dir="${dir%/*}"
    while [[ -n $dir ]]; do
        chain=("$dir" "${chain[@]}")
        dir="${dir%/*}"
    done
    for dir in "${chain[@]}"; do
        if [[ -d $dir && ! -x $dir ]]; then
            printf '%s\n' "$dir"
            return 0
        fi
        [[ -e $dir ]] || return 1
    done
    return 1
}

# _ot_python_problem CANDIDATE: say in one line why CANDIDATE (a path or a command name) is
# not a working Python >= 3.12: missing, permission denied (on which file or directory), too
# old, or failing to start (its first line of error). Prints nothing if it works.
_ot_python_problem() {
    local c="$1" path="" dir mode out version d
    local -a dirs=()
    if [[ $c != */* ]]; then
        path="$(command -v "$c" 2>/dev/null)" || path=""
        if [[ -z $path ]]; then
            # command -v skips files we may not execute: look for them by hand.
            IFS=: read -r -a dirs <<<"$PATH"
            for d in "${dirs[@]}"; do
                if [[ -e $d/$c || -L $d/$c ]]; then
                    path="$d/$c"
                    break
                fi
            done
        fi
        [[ -n $path ]] || { printf '%s: not found on PATH\n' "$c"; return 0; }
        c="$path"
    fi
    if [[ ! -e $c ]]; then
        if dir="$(_ot_denied_dir "$(readlink -m -- "$c")")" || dir="$(_ot_denied_dir "$c")"; then
            mode="$(stat -c '%A, owner %U' -- "$dir" 2>/dev/null)"
            printf '%s: permission denied: %s cannot enter %s (%s)\n' "$c" "$(id -un)" "$dir" "$mode"
        elif [[ -L $c ]]; then
            printf '%s: broken symlink to %s\n' "$c" "$(readlink -- "$c")"
        else
            printf '%s: no such file\n' "$c"
        fi
        return 0
    fi
    if [[ -d $c ]]; then
        printf '%s: is a directory, not a Python interpreter\n' "$c"
        return 0
    fi
    if [[ ! -x $c || ! -r $c ]]; then
        mode="$(stat -L -c '%A, owner %U' -- "$c" 2>/dev/null)"
        printf '%s: permission denied: not readable and executable by %s (%s)\n' \
            "$c" "$(id -un)" "$mode"
        return 0
    fi
    if ! version="$("$c" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>&1)"; then
        out="${version%%$'\n'*}"
        printf '%s: does not start: %s\n' "$c" "${out:-no output}"
        return 0
    fi
    if ! _ot_python_ok "$c"; then
        printf '%s: is Python %s, older than 3.12\n' "$c" "$version"
    fi
}

# _ot_python_fix: what to do when no usable Python >= 3.12 was found.
_ot_python_fix() {
    cat >&2 <<'EOF'
       Fix:   install Python 3.12 or newer that you may run (Debian bookworm only ships 3.11):
                uv python install 3.13        (or, as yourself: pyenv install 3.13)
              then re-run, or point at any such interpreter explicitly:
                OMNITENANT_PYTHON=/path/to/python3.13 scripts/test
              An interpreter another user installed (root's pyenv under /root, say) works only if
              you may enter every directory on its path and read its files: ask its owner.
EOF
}

# find_python: print the absolute path of a working Python >= 3.12, or explain and fail.
find_python() {
    local c why
    local -a cands=() problems=()
    if [[ -n ${OMNITENANT_PYTHON:-} ]]; then
        # An explicit choice that does not work is an error, not something to silently ignore.
        if _ot_python_ok "$OMNITENANT_PYTHON"; then
            "$OMNITENANT_PYTHON" -c 'import sys; print(sys.executable)'
            return 0
        fi
        why="$(_ot_python_problem "$OMNITENANT_PYTHON")"
        ot_err "OMNITENANT_PYTHON=$OMNITENANT_PYTHON is not a working Python >= 3.12: ${why#*: }."
        _ot_python_fix
        return 1
    fi

    cands=(python3.14 python3.13 python3.12)
    if command -v pyenv >/dev/null 2>&1; then
        local proot
        proot="$(pyenv root 2>/dev/null)" || proot=""
        if [[ -n $proot ]]; then
            mapfile -t -O "${#cands[@]}" cands < <(_ot_glob_newest_first "$proot"/versions/3.1[2-9]*/bin/python3)
        fi
    fi
    # root's pyenv, when we are allowed to look inside /root (the glob just fails otherwise).
    mapfile -t -O "${#cands[@]}" cands < <(_ot_glob_newest_first /root/.pyenv/versions/3.1[2-9]*/bin/python3)
    mapfile -t -O "${#cands[@]}" cands < <(_ot_glob_newest_first /usr/local/bin/python3.1[2-9])
    mapfile -t -O "${#cands[@]}" cands < <(_ot_glob_newest_first /usr/bin/python3.1[2-9])
    cands+=(python3)

    for c in "${cands[@]}"; do
        if _ot_python_ok "$c"; then
            # Resolve shims and bare names to the real interpreter.
            "$c" -c 'import sys; print(sys.executable or sys.argv[0])'
            return 0
        fi
        why="$(_ot_python_problem "$c")"
        # Interpreters that are there but unusable are worth a line; absent names are not.
        [[ -z $why || $why == *": not found on PATH" ]] || problems+=("$why")
    done
    if [[ -d /root && ! -x /root ]]; then
        problems+=("/root: permission denied: $(id -un) cannot look for root's pyenv there ($(stat -c '%A, owner %U' /root 2>/dev/null))")
    fi

    ot_err "no Python >= 3.12 found (python3 here is $(python3 -V 2>&1 || echo 'missing'))."
    if ((${#problems[@]})); then
        printf '       Found, not usable:\n' >&2
        printf '         %s\n' "${problems[@]}" >&2
    fi
    cat >&2 <<'EOF'
       Tried: $OMNITENANT_PYTHON, python3.14/3.13/3.12 on PATH, $(pyenv root)/versions/3.1x,
              /root/.pyenv/versions/3.1x, /usr/local/bin/python3.1x, /usr/bin/python3.1x, python3.
EOF
    _ot_python_fix
    return 1
}

# ensure_venv: make sure $OT_VENV exists, runs Python >= 3.12 and has `-e ".[test]"` installed;
# then put it first on PATH. The install is skipped while .venv/.omnitenant-stamp holds the
# sha256 of pyproject.toml, so the warm path costs one interpreter start.
ensure_venv() {
    local vpy="$OT_VENV/bin/python" stamp="$OT_VENV/.omnitenant-stamp" want have="" base lockfd

    # Serialise concurrent runs (e.g. scripts/demo and scripts/test started together on a cold
    # checkout). Locking pyproject.toml itself avoids creating a lock file in the work tree.
    exec {lockfd}<"$OT_ROOT/pyproject.toml"
    flock "$lockfd" 2>/dev/null || true

    if [[ -e $OT_VENV || -L $OT_VENV ]] && ! _ot_python_ok "$vpy"; then
        ot_warn "recreating .venv: its Python is missing, broken or older than 3.12"
        rm -rf -- "$OT_VENV"
    fi
    if [[ ! -e $OT_VENV ]]; then
        base="$(find_python)" || { exec {lockfd}<&-; return 1; }
        ot_log "creating .venv with $base ($("$base" -V 2>&1))"
        if ! "$base" -m venv "$OT_VENV"; then
            ot_err "'$base -m venv' failed (on Debian, install the matching pythonX.Y-venv package)."
            rm -rf -- "$OT_VENV"
            exec {lockfd}<&-
            return 1
        fi
    fi

    want="$(sha256sum "$OT_ROOT/pyproject.toml")"
    want="${want%% *}"
    [[ -r $stamp ]] && have="$(<"$stamp")"
    if [[ $have != "$want" ]]; then
        ot_log "installing -e \".[test]\" into .venv (first run or pyproject.toml changed)"
        # -q keeps pip to warnings and errors; PIP_NO_INPUT because CI has no stdin.
        if ! PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
            "$vpy" -m pip install -q --upgrade pip </dev/null; then
            ot_err "upgrading pip in .venv failed"
            exec {lockfd}<&-
            return 1
        fi
        if ! (cd "$OT_ROOT" && PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
            "$vpy" -m pip install -q -e ".[test]" </dev/null); then
            ot_err "pip install -e \".[test]\" failed (see the pip output above)"
            exec {lockfd}<&-
            return 1
        fi
        printf '%s\n' "$want" >"$stamp"
    fi
    exec {lockfd}<&-

    export VIRTUAL_ENV="$OT_VENV"
    export PATH="$OT_VENV/bin:$PATH"
}

_ot_is_312() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; }

# find_min_python: print the path of a working Python 3.12 (the lowest version we support), for
# .venv-min. OMNITENANT_MIN_PYTHON overrides the search.
find_min_python() {
    local c
    local -a cands=()
    if [[ -n ${OMNITENANT_MIN_PYTHON:-} ]]; then
        cands=("$OMNITENANT_MIN_PYTHON")
    else
        cands=(python3.12)
        if command -v pyenv >/dev/null 2>&1; then
            local proot
            proot="$(pyenv root 2>/dev/null)" || proot=""
            [[ -z $proot ]] || mapfile -t -O 1 cands < <(_ot_glob_newest_first "$proot"/versions/3.12*/bin/python3)
        fi
        mapfile -t -O "${#cands[@]}" cands < <(_ot_glob_newest_first /root/.pyenv/versions/3.12*/bin/python3)
        cands+=(/usr/local/bin/python3.12 /usr/bin/python3.12)
    fi
    for c in "${cands[@]}"; do
        if _ot_is_312 "$c"; then
            "$c" -c 'import sys; print(sys.executable or sys.argv[0])'
            return 0
        fi
    done
    ot_err "no working Python 3.12 found for the lowest-versions venv (tried: ${cands[*]})."
    ot_err "install one (pyenv install 3.12) or set OMNITENANT_MIN_PYTHON=/path/to/python3.12"
    return 1
}

# ensure_min_venv: like ensure_venv, for the lowest supported versions: $OT_VENV_MIN
# (.venv-min) runs Python 3.12 and has `-e ".[test]"` installed with every dependency floor
# declared in pyproject.toml pinned exactly (scripts/floors.py writes the constraints; Django is
# the latest 5.2.x). Re-installed from scratch when pyproject.toml changes (the stamp holds its
# sha256). Puts .venv-min first on PATH.
OT_VENV_MIN="$OT_ROOT/.venv-min"
ensure_min_venv() {
    local venv="$OT_VENV_MIN" stamp="$OT_VENV_MIN/.omnitenant-stamp" want have="" base lockfd
    exec {lockfd}<"$OT_ROOT/pyproject.toml"
    flock "$lockfd" 2>/dev/null || true

    want="$(sha256sum "$OT_ROOT/pyproject.toml" "$OT_ROOT/scripts/floors.py" | sha256sum)"
    want="min ${want%% *}"
    [[ -r $stamp ]] && have="$(<"$stamp")"
    if [[ $have != "$want" ]] || ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
        base="$(find_min_python)" || { exec {lockfd}<&-; return 1; }
        # A fresh venv each time: pip never downgrades what an earlier install left behind.
        rm -rf -- "$venv"
        ot_log "creating ${venv#"$OT_ROOT/"} with $base ($("$base" -V 2>&1)) and the declared floors"
        local constraints
        constraints="$(mktemp "${TMPDIR:-/tmp}/omnitenant-floors.XXXXXX")"
        _OT_TMPDIRS+=("$constraints")
        if ! "$base" "$OT_ROOT/scripts/floors.py" >"$constraints"; then
            ot_err "scripts/floors.py failed"
            exec {lockfd}<&-
            return 1
        fi
        ot_log "constraints: $(tr '\n' ' ' <"$constraints")"
        if ! "$base" -m venv "$venv" ||
            ! (cd "$OT_ROOT" && PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
                "$venv/bin/python" -m pip install -q -c "$constraints" -e ".[test]" </dev/null); then
            ot_err "building ${venv#"$OT_ROOT/"} with the declared floors failed (pip output above)"
            rm -rf -- "$venv"
            exec {lockfd}<&-
            return 1
        fi
        printf '%s\n' "$want" >"$stamp"
    fi
    exec {lockfd}<&-

    export VIRTUAL_ENV="$venv"
    export PATH="$venv/bin:$PATH"
}

# --------------------------------------------------------------------------------------------
# System packages
# --------------------------------------------------------------------------------------------

# _ot_apt_install PKG...: install Debian packages as root, or via passwordless sudo.
_ot_apt_install() {
    local -a sudo=()
    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            ot_warn "cannot install $* (not root and no passwordless sudo); ask an admin for: apt-get install $*"
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        ot_warn "cannot install $* (no apt-get on this machine)"
        return 1
    fi
    ot_log "installing Debian package(s): $*"
    local out
    out="$(mktemp)"
    if [[ -z $_OT_APT_UPDATED ]]; then
        if ! "${sudo[@]}" apt-get update -qq </dev/null >"$out" 2>&1; then
            cat "$out" >&2
            rm -f -- "$out"
            ot_warn "apt-get update failed"
            return 1
        fi
        _OT_APT_UPDATED=1
    fi
    # dpkg is chatty even with -qq: keep its output unless something fails.
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=120 "$@" \
        </dev/null >"$out" 2>&1; then
        cat "$out" >&2
        rm -f -- "$out"
        ot_warn "apt-get install $* failed"
        return 1
    fi
    rm -f -- "$out"
}

# ensure_apt CMD[=PKG]...: for each command not on PATH, install Debian package PKG (defaults
# to CMD, e.g. `ensure_apt wrk redis-cli=redis-tools`). Returns 1 with a warning if something
# is still missing; the caller decides whether that is fatal.
ensure_apt() {
    local arg cmd
    local -a pkgs=() cmds=()
    for arg in "$@"; do
        cmd="${arg%%=*}"
        if ! command -v "$cmd" >/dev/null 2>&1; then
            cmds+=("$cmd")
            pkgs+=("${arg#*=}")
        fi
    done
    ((${#pkgs[@]})) || return 0
    _ot_apt_install "${pkgs[@]}" || return 1
    hash -r
    for cmd in "${cmds[@]}"; do
        if ! command -v "$cmd" >/dev/null 2>&1; then
            ot_warn "'$cmd' is still not on PATH after installing ${pkgs[*]}"
            return 1
        fi
    done
}

# ensure_wrk: the HTTP load generator used by benchmarks.
ensure_wrk() {
    ensure_apt wrk
}

# bench_prelude: what every HTTP benchmark (bench/run_*.sh) needs before it starts: the
# repository's .venv as it is when it already has what the benchmarks import (else built),
# wrk, and a throwaway PostgreSQL unless OMNITENANT_PG_PORT names one. Exits if wrk is missing.
bench_prelude() {
    cd "$OT_ROOT" || return 1
    if "$OT_VENV/bin/python" -c 'import django, uvicorn, psycopg, psycopg_pool' 2>/dev/null; then
        export VIRTUAL_ENV="$OT_VENV" PATH="$OT_VENV/bin:$PATH"
    else
        ensure_venv
    fi
    if ! ensure_wrk; then
        ot_err "wrk is required (apt-get install wrk)"
        exit 1
    fi
    [[ -n ${OMNITENANT_PG_PORT:-} ]] || start_postgres OMNITENANT_PG
    export OMNITENANT_PGUSER="${OMNITENANT_PGUSER:-postgres}"
}

# bench_pgbouncer: a PgBouncer in transaction mode in front of the benchmark's PostgreSQL
# (after bench_prelude), unless OMNITENANT_PGBOUNCER_TX_PORT is set; exit 1 if there is none.
bench_pgbouncer() {
    [[ -n ${OMNITENANT_PGBOUNCER_TX_PORT:-} ]] || start_pgbouncer transaction
    if [[ -z ${OMNITENANT_PGBOUNCER_TX_PORT:-} ]]; then
        ot_err "pgbouncer is required (apt-get install pgbouncer)"
        exit 1
    fi
}

# --------------------------------------------------------------------------------------------
# Processes, ports
# --------------------------------------------------------------------------------------------

# register_pid PID: have cleanup stop PID (TERM, then KILL after a grace period).
register_pid() {
    _OT_PIDS+=("$1")
}

# _ot_port_busy PORT: something accepts connections on 127.0.0.1:PORT (bash's /dev/tcp; a free
# loopback port refuses at once).
_ot_port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port [START]: print the first port >= START (default 55432) nobody listens on. Another
# process can still grab it before we bind, so the start_* functions retry on "address in use".
free_port() {
    local p="${1:-55432}"
    while _ot_port_busy "$p"; do
        p=$((p + 1))
        if ((p > 65535)); then
            ot_err "no free TCP port found on 127.0.0.1"
            return 1
        fi
    done
    printf '%s\n' "$p"
}

# _ot_alive PID: the process exists and is not a zombie. kill -0 alone is not enough: a
# stopped postmaster is reparented to pid 1 and lingers as a zombie until pid 1 reaps it.
_ot_alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    [[ -r /proc/$1/stat ]] || return 0
    stat="$(<"/proc/$1/stat")" || return 1
    stat="${stat##*) }" # the state letter follows "(comm) "
    [[ ${stat:0:1} != Z ]]
}

# _ot_wait_gone PID SECONDS: wait up to SECONDS for PID to disappear.
_ot_wait_gone() {
    local pid="$1" i
    for ((i = 0; i < $2 * 10; i++)); do
        _ot_alive "$pid" || return 0
        sleep 0.1
    done
    ! _ot_alive "$pid"
}

# Set _OT_DETACH to a prefix that runs a server in its own session (util-linux setsid), so a
# Ctrl-C in the terminal, which goes to the whole foreground process group, reaches
# pytest/uvicorn only and cleanup can then stop the servers in order. -w: should setsid have to
# fork (it does when called as a process group leader), it waits, so $! stays alive with the
# server. Empty if setsid is missing. (pg_ctl needs none of this: it detaches the postmaster.)
_ot_detach_prefix() {
    _OT_DETACH=()
    if command -v setsid >/dev/null 2>&1; then
        _OT_DETACH=(setsid -w)
    fi
}

# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

# Print the PostgreSQL bin directory (with initdb and pg_ctl); PostgreSQL 15 is preferred.
_ot_pg_bindir() {
    local d
    if [[ -n ${OMNITENANT_PG_BINDIR:-} ]]; then
        if [[ -x $OMNITENANT_PG_BINDIR/initdb ]]; then
            printf '%s\n' "$OMNITENANT_PG_BINDIR"
            return 0
        fi
        ot_err "OMNITENANT_PG_BINDIR=$OMNITENANT_PG_BINDIR has no initdb"
        return 1
    fi
    local -a dirs=(/usr/lib/postgresql/15/bin)
    mapfile -t -O 1 dirs < <(_ot_glob_newest_first /usr/lib/postgresql/*/bin)
    for d in "${dirs[@]}"; do
        [[ -x $d/initdb && -x $d/pg_ctl ]] && { printf '%s\n' "$d"; return 0; }
    done
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir 2>/dev/null)" || d=""
        [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]] && { printf '%s\n' "$d"; return 0; }
    fi
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        d="$(dirname -- "$(readlink -f -- "$(command -v initdb)")")"
        printf '%s\n' "$d"
        return 0
    fi
    return 1
}

# Run a command as the cluster owner: the `postgres` OS user when we are root (PostgreSQL
# refuses to run as root), ourselves otherwise. _ot_pg_prefix sets the prefix _OT_AS_PG
# (runuser -u postgres --, or nothing); _ot_as_pg runs a command with it.
_ot_pg_prefix() {
    _OT_AS_PG=()
    ((EUID == 0)) || return 0
    if ! id postgres >/dev/null 2>&1; then
        ot_err "running as root, but there is no 'postgres' OS user to own the cluster"
        return 1
    fi
    if command -v runuser >/dev/null 2>&1; then
        _OT_AS_PG=(runuser -u postgres --)
    elif command -v setpriv >/dev/null 2>&1; then
        _OT_AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --)
    else
        ot_err "running as root, but neither runuser nor setpriv is available to switch to 'postgres'"
        return 1
    fi
}

_ot_as_pg() {
    "${_OT_AS_PG[@]}" "$@"
}

# start_postgres NAME: start a throwaway PostgreSQL cluster on 127.0.0.1 and export
#   NAME_HOST=127.0.0.1  NAME_PORT  NAME_PID (postmaster)  NAME_DIR (temp dir with data/,
#   sock/ and postgres.log). Superuser `postgres`, trust auth. Stopped and deleted by cleanup.
start_postgres() {
    local name="${1:-}"
    if [[ ! $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
        ot_err "usage: start_postgres NAME (a variable prefix such as OMNITENANT_PG)"
        return 1
    fi
    local bindir
    if ! bindir="$(_ot_pg_bindir)"; then
        # The Debian package puts binaries in /usr/lib/postgresql/15/bin, not on PATH.
        _ot_apt_install postgresql-15 || true
        bindir="$(_ot_pg_bindir)" || {
            ot_err "PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql-15 or set OMNITENANT_PG_BINDIR"
            return 1
        }
    fi

    _ot_pg_prefix || return 1
    local base="${TMPDIR:-/tmp}"
    # As root the postgres user must be able to reach the dir, whatever root's TMPDIR is.
    ((EUID != 0)) || base=/tmp
    local tmp
    tmp="$(mktemp -d "$base/omnitenant-pg.XXXXXX")"
    _OT_TMPDIRS+=("$tmp")
    ((EUID != 0)) || chown postgres: "$tmp"
    local data="$tmp/data" log="$tmp/postgres.log"
    # Work from inside the temp dir: the postgres user may not be allowed into our cwd.
    (cd "$tmp" && _ot_as_pg mkdir -m 700 "$tmp/sock")

    # -N: no fsync of the fresh cluster (throwaway). C.UTF-8 is not present everywhere.
    if ! (cd "$tmp" && _ot_as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 -N >"$tmp/initdb.log" 2>&1 </dev/null); then
        (cd "$tmp" && _ot_as_pg rm -rf "$data")
        if ! (cd "$tmp" && _ot_as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust \
            -E UTF8 --locale=C -N >"$tmp/initdb.log" 2>&1 </dev/null); then
            cat "$tmp/initdb.log" >&2
            ot_err "initdb failed for $name (log above)"
            return 1
        fi
    fi

    # Appending keeps the file's ownership (postgres) even when we are root.
    cat >>"$data/postgresql.conf" <<EOF

# --- omnitenant_async throwaway test cluster (scripts/lib.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$tmp/sock'
max_connections = 400
shared_preload_libraries = 'pg_stat_statements'
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
EOF

    # The port goes on the command line so a retry only has to change the argument.
    local port next=55432 attempt
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        port="$(free_port "$next")" || return 1
        rm -f -- "$log" # fresh log per attempt, created by the server's owner
        # pg_ctl starts the postmaster in a session of its own, safe from the terminal's Ctrl-C.
        if (cd "$tmp" && _ot_as_pg "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 30 \
            -o "-p $port" start >"$tmp/pg_ctl.log" 2>&1 </dev/null); then
            break
        fi
        if grep -q 'Address already in use' "$log" 2>/dev/null && ((attempt < 10)); then
            next=$((port + 1)) # lost a race for the port: try the next one
            continue
        fi
        cat "$tmp/pg_ctl.log" >&2
        printf -- '--- %s ---\n' "$log" >&2
        tail -n 50 "$log" >&2 || true
        ot_err "PostgreSQL ($name) did not start within 30s (server log above)"
        # pg_ctl may have given up while the server still comes up: let cleanup stop it.
        _OT_PG_DATA+=("$data") _OT_PG_PIDS+=("") _OT_PG_BINDIRS+=("$bindir")
        return 1
    done

    local pid
    pid="$(head -n 1 "$data/postmaster.pid")"
    _OT_PG_DATA+=("$data") _OT_PG_PIDS+=("$pid") _OT_PG_BINDIRS+=("$bindir")

    # pg_ctl -w already waited for "ready"; confirm over TCP, which is what the tests use.
    local i
    for ((i = 0; i < 300; i++)); do
        "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres && break
        sleep 0.1
    done
    if ((i == 300)); then
        tail -n 50 "$log" >&2 || true
        ot_err "PostgreSQL ($name) is not accepting connections on 127.0.0.1:$port (server log above)"
        return 1
    fi

    export "${name}_HOST=127.0.0.1" "${name}_PORT=$port" "${name}_PID=$pid" "${name}_DIR=$tmp"
    ot_log "PostgreSQL $name: 127.0.0.1:$port (pid $pid, $tmp)"
}

# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------

# _ot_redis_ping PORT: true once Redis answers PONG.
_ot_redis_ping() {
    if command -v redis-cli >/dev/null 2>&1; then
        [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == PONG ]]
    else
        # Plain RESP over bash's /dev/tcp: no client needed.
        (
            exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
            printf 'PING\r\n' >&3
            IFS= read -r -t 2 reply <&3 || exit 1
            [[ $reply == +PONG* ]]
        ) 2>/dev/null
    fi
}

# start_redis: start a throwaway Redis on 127.0.0.1 and export OMNITENANT_REDIS_URL. If Redis
# cannot be installed, warn and export nothing (Redis-backed tests then skip); returns 0.
start_redis() {
    if ! ensure_apt redis-server; then
        ot_warn "redis-server unavailable: OMNITENANT_REDIS_URL not set, Redis-backed tests will skip"
        return 0
    fi
    local tmp
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/omnitenant-redis.XXXXXX")"
    _OT_TMPDIRS+=("$tmp")

    _ot_detach_prefix
    local port next=56379 attempt pid i up
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        port="$(free_port "$next")" || return 1
        # --pidfile: if setsid had to fork, $! is setsid, not the server.
        (cd "$tmp" && exec "${_OT_DETACH[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' \
            --appendonly no --daemonize no --dir "$tmp" --logfile "$tmp/redis.log" \
            --pidfile "$tmp/redis.pid" </dev/null >/dev/null 2>&1) &
        pid=$!
        register_pid "$pid"
        up=""
        for ((i = 0; i < 100; i++)); do
            if _ot_redis_ping "$port"; then
                up=1
                break
            fi
            _ot_alive "$pid" || break # exited: bad port or config
            sleep 0.1
        done
        [[ -n $up ]] && break
        if grep -q 'Address already in use' "$tmp/redis.log" 2>/dev/null && ((attempt < 10)); then
            next=$((port + 1))
            : >"$tmp/redis.log"
            continue
        fi
        tail -n 30 "$tmp/redis.log" >&2 || true
        ot_err "redis-server did not answer PING on 127.0.0.1:$port (log above)"
        return 1
    done

    if [[ -s $tmp/redis.pid ]]; then
        local rpid
        rpid="$(<"$tmp/redis.pid")"
        [[ $rpid == "$pid" ]] || register_pid "$rpid"
        pid="$rpid"
    fi
    export OMNITENANT_REDIS_URL="redis://127.0.0.1:$port/0"
    ot_log "Redis: $OMNITENANT_REDIS_URL (pid $pid)"
}

# --------------------------------------------------------------------------------------------
# PgBouncer
# --------------------------------------------------------------------------------------------

# _ot_pgbouncer_bin: print the pgbouncer binary (Debian puts it in /usr/sbin, which a normal
# user's PATH may lack).
_ot_pgbouncer_bin() {
    command -v pgbouncer 2>/dev/null && return 0
    [[ -x /usr/sbin/pgbouncer ]] && { printf '%s\n' /usr/sbin/pgbouncer; return 0; }
    return 1
}

# start_pgbouncer MODE [VAR] [PG_PORT]: start a throwaway PgBouncer on 127.0.0.1 in pool_mode
# MODE (transaction, session or statement) in front of the PostgreSQL on 127.0.0.1:PG_PORT
# (default $OMNITENANT_PG_PORT), every database (`* = ...`), trust auth for `postgres`, and
# export VAR=<its port> (default OMNITENANT_PGBOUNCER_TX_PORT for transaction mode,
# OMNITENANT_PGBOUNCER_SESSION_PORT for session mode). default_pool_size is 4
# (OMNITENANT_PGBOUNCER_POOL_SIZE): fewer server connections than clients, so clients really
# share server connections. If pgbouncer cannot be installed, warn and export nothing (the
# pooler tests then skip); returns 0. Stopped by cleanup.
start_pgbouncer() {
    local mode="${1:-}" var="${2:-}" pg_port="${3:-${OMNITENANT_PG_PORT:-}}"
    case "$mode" in
    transaction) var="${var:-OMNITENANT_PGBOUNCER_TX_PORT}" ;;
    session) var="${var:-OMNITENANT_PGBOUNCER_SESSION_PORT}" ;;
    statement) var="${var:-OMNITENANT_PGBOUNCER_STATEMENT_PORT}" ;;
    *)
        ot_err "usage: start_pgbouncer transaction|session|statement [VAR] [PG_PORT]"
        return 1
        ;;
    esac
    if [[ -z $pg_port ]]; then
        ot_err "start_pgbouncer: no PostgreSQL port (start_postgres OMNITENANT_PG first)"
        return 1
    fi
    local bin
    if ! bin="$(_ot_pgbouncer_bin)"; then
        ensure_apt pgbouncer || true
        if ! bin="$(_ot_pgbouncer_bin)"; then
            ot_warn "pgbouncer unavailable: $var not set, the PgBouncer tests will skip"
            return 0
        fi
    fi
    # PgBouncer refuses to run as root: run it as `postgres`, like the clusters.
    _ot_pg_prefix || return 1
    local base="${TMPDIR:-/tmp}"
    ((EUID != 0)) || base=/tmp
    local tmp
    tmp="$(mktemp -d "$base/omnitenant-pgbouncer.XXXXXX")"
    _OT_TMPDIRS+=("$tmp")
    # trust still wants the user listed in auth_file.
    printf '"%s" ""\n' "${OMNITENANT_PGUSER:-postgres}" >"$tmp/userlist.txt"
    ((EUID != 0)) || chown -R postgres: "$tmp"

    _ot_detach_prefix
    local port next=56432 attempt pid i up conf="$tmp/pgbouncer.ini" log="$tmp/pgbouncer.log"
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        port="$(free_port "$next")" || return 1
        cat >"$conf" <<EOF
; omnitenant_async throwaway PgBouncer (scripts/lib.sh start_pgbouncer)
[databases]
* = host=127.0.0.1 port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $tmp/userlist.txt
admin_users = ${OMNITENANT_PGUSER:-postgres}
pool_mode = $mode
default_pool_size = ${OMNITENANT_PGBOUNCER_POOL_SIZE:-4}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
ignore_startup_parameters = extra_float_digits,options
server_reset_query = DISCARD ALL
server_reset_query_always = 0
logfile = $log
pidfile = $tmp/pgbouncer.pid
log_connections = 0
log_disconnections = 0
EOF
        ((EUID != 0)) || chown postgres: "$conf"
        rm -f -- "$log" "$tmp/pgbouncer.pid"
        # Foreground (no -d) so $! is the server (or setsid, which then waits for it).
        (cd "$tmp" && exec "${_OT_DETACH[@]}" "${_OT_AS_PG[@]}" "$bin" "$conf" \
            </dev/null >>"$tmp/stdout.log" 2>&1) &
        pid=$!
        register_pid "$pid"
        up=""
        for ((i = 0; i < 100; i++)); do
            if _ot_port_busy "$port" && [[ -s $tmp/pgbouncer.pid ]]; then
                up=1
                break
            fi
            _ot_alive "$pid" || break # exited: bad port or config
            sleep 0.1
        done
        [[ -n $up ]] && break
        if grep -qs 'Address already in use' "$log" "$tmp/stdout.log" && ((attempt < 10)); then
            next=$((port + 1))
            continue
        fi
        tail -n 30 "$log" "$tmp/stdout.log" >&2 || true
        ot_err "pgbouncer ($mode) did not listen on 127.0.0.1:$port (log above)"
        return 1
    done

    local bpid
    bpid="$(<"$tmp/pgbouncer.pid")"
    [[ $bpid == "$pid" ]] || register_pid "$bpid"
    # Listening is not enough: a query must go through to the server.
    local bindir
    if bindir="$(_ot_pg_bindir)" && [[ -x $bindir/psql ]]; then
        for ((i = 0; i < 100; i++)); do
            "$bindir/psql" -qAtX -h 127.0.0.1 -p "$port" -U "${OMNITENANT_PGUSER:-postgres}" \
                -d postgres -c 'SELECT 1' >/dev/null 2>&1 </dev/null && break
            sleep 0.1
        done
        if ((i == 100)); then
            tail -n 30 "$log" >&2 || true
            ot_err "pgbouncer ($mode) on 127.0.0.1:$port does not pass queries to 127.0.0.1:$pg_port (log above)"
            return 1
        fi
    fi
    export "$var=$port"
    ot_log "PgBouncer ($mode): 127.0.0.1:$port -> 127.0.0.1:$pg_port (pid $bpid, $tmp)"
}

# --------------------------------------------------------------------------------------------
# Cleanup
# --------------------------------------------------------------------------------------------

# cleanup: stop what we started (recorded pids only) and remove our temp dirs. It forgets what
# it handled, so running it again (signal trap, then EXIT trap) is a no-op. Keeps the exit status.
cleanup() {
    local rc=$?
    local opts=$-
    set +e # best effort from here on

    local pid i
    for pid in "${_OT_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${_OT_PIDS[@]}"; do
        _ot_wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null # reap our own children quietly
    done

    for i in "${!_OT_PG_DATA[@]}"; do
        pid="${_OT_PG_PIDS[i]}"
        [[ -n $pid ]] || pid="$(head -n 1 "${_OT_PG_DATA[i]}/postmaster.pid" 2>/dev/null)"
        (cd / && _ot_as_pg "${_OT_PG_BINDIRS[i]}/pg_ctl" -D "${_OT_PG_DATA[i]}" -m fast -w -t 20 \
            stop) >/dev/null 2>&1 </dev/null
        if [[ -n $pid ]] && _ot_alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null
            _ot_wait_gone "$pid" 5
        fi
    done

    if ((${#_OT_TMPDIRS[@]})); then
        rm -rf -- "${_OT_TMPDIRS[@]}"
    fi
    _OT_PIDS=() _OT_PG_DATA=() _OT_PG_PIDS=() _OT_PG_BINDIRS=() _OT_TMPDIRS=()
    [[ $opts != *e* ]] || set -e
    return "$rc"
}

trap cleanup EXIT
# An interactive shell that sources this must not exit on Ctrl-C.
if [[ $- != *i* ]]; then
    trap 'cleanup; trap - INT; exit 130' INT
    trap 'cleanup; trap - TERM; exit 143' TERM
fi

# `bash scripts/lib.sh FUNCTION [ARGS...]` runs one function (handy for debugging).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    if (($# == 0)); then
        echo "usage: bash scripts/lib.sh FUNCTION [ARGS...]   (normally sourced by scripts/test)" >&2
        exit 2
    fi
    "$@"
fi
