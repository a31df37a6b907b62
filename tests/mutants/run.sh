#!/usr/bin/env bash
# tests/mutants/run.sh - plant each known bug and check that its test notices.
#
#   tests/mutants/run.sh BUILD [NAME.patch ...]     (make mutants)
#
# Every tests/mutants/*.patch is one small deliberate bug: a unified diff
# against the tree (applied with patch -p1) headed by lines that say what
# it breaks and which test must catch it:
#
#   Mutant: resync() sends nothing
#   Test: tests/integration/test_faults.py::test_worker_behind_the_ring_...
#   Test: check_proto:seat_update          (a Check suite, then its case)
#
# The tree is copied once to BUILD/mutants/tree together with BUILD's
# objects, so each mutant rebuilds only the files it touches.  For each
# mutant: apply, build, run only its tests, revert.  Every test named must
# fail (each is one that must catch the bug): a mutant survives when any
# of them passes.  A patch that no longer applies or builds, or a test that
# is not found, is an error too (a stale mutant guards nothing).
# Exit 0 only if every mutant was killed.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: run.sh BUILD [NAME.patch ...]}
shift
case $build in /*) ;; *) build=$top/$build ;; esac
scratch=$build/mutants/tree
py=/usr/bin/python3

if [ $# -gt 0 ]; then
    patches=("$@")
else
    patches=("$top"/tests/mutants/*.patch)
fi

# the scratch tree: sources as they are now (committed or not), plus the
# objects of BUILD with their times, so make rebuilds only what a patch
# touches
rm -rf "$scratch"
mkdir -p "$scratch/build"
(cd "$top" && tar --exclude=./build --exclude=./run --exclude=node_modules \
     --exclude=./.git -cf - .) | tar -xf - -C "$scratch" || exit 2
for d in obj tests libseatcast.a libscshm.a seatcast; do
    [ -e "$build/$d" ] && cp -a "$build/$d" "$scratch/build/"
done
nm=$top/tests/integration/node/node_modules
[ -d "$nm" ] && ln -s "$nm" "$scratch/tests/integration/node/node_modules"

killed=0 survived=0 broken=0
report=()

run_test() { # TEST -> 0 passed, 1 failed, 2 could not run
    local t=$1 rc
    case $t in
    tests/*)
        (cd "$scratch" && SEATCAST_BIN=$scratch/build/seatcast \
            timeout 300 $py -m pytest -q -x -p no:cacheprovider "$t") \
            >>"$log" 2>&1
        rc=$?
        case $rc in 0) return 0 ;; 1) return 1 ;; *) return 2 ;; esac
        ;;
    check_*)
        local suite=${t%%:*} case=${t#*:}
        [ "$case" = "$t" ] && case=
        make -s -C "$scratch" "build/tests/$suite" >>"$log" 2>&1 || return 2
        (cd "$scratch" && CK_FORK=yes CK_RUN_CASE=$case \
            timeout 300 "build/tests/$suite") >>"$log" 2>&1
        rc=$?
        # Check exits 1 on a failure; "0 checks" means the case is gone
        grep -q "Checks: 0," "$log" && return 2
        [ $rc = 0 ] && return 0 || return 1
        ;;
    *) echo "unknown test kind: $t" >>"$log"; return 2 ;;
    esac
}

for p in "${patches[@]}"; do
    name=$(basename "$p" .patch)
    log=$build/mutants/$name.log
    : >"$log"
    what=$(sed -n 's/^Mutant: //p' "$p" | head -1)
    mapfile -t tests < <(sed -n 's/^Test: //p' "$p")
    start=$(date +%s)
    if [ ${#tests[@]} = 0 ] || [ -z "$what" ]; then
        verdict="ERROR (no Mutant:/Test: header)"
    elif ! patch -d "$scratch" -p1 -s -f <"$p" >>"$log" 2>&1; then
        verdict="ERROR (does not apply)"
    else
        if ! make -s -C "$scratch" -j2 all >>"$log" 2>&1; then
            verdict="ERROR (does not build)"
        else
            verdict="killed"
            for t in "${tests[@]}"; do
                echo "== $t" >>"$log"
                run_test "$t"
                case $? in
                0) verdict="SURVIVED $t passed"; break ;;
                1) ;;
                *) verdict="ERROR (could not run $t)"; break ;;
                esac
            done
        fi
        patch -d "$scratch" -p1 -s -f -R <"$p" >>"$log" 2>&1 ||
            { echo "mutants: could not revert $name" >&2; exit 2; }
    fi
    case $verdict in
    killed*) killed=$((killed + 1)) ;;
    SURVIVED*) survived=$((survived + 1)) ;;
    *) broken=$((broken + 1)) ;;
    esac
    line=$(printf '%-34s %-9s %4ss  %s' "$name" "${verdict%% *}" \
        "$(( $(date +%s) - start ))" "$what")
    echo "$line"
    [ "${verdict%% *}" = killed ] || echo "    $verdict (log: $log)"
done
# the tree is put back as it was: rebuild so the next run starts clean
make -s -C "$scratch" -j2 all >/dev/null 2>&1
echo "mutants: $killed killed, $survived survived, $broken broken"
[ $survived = 0 ] && [ $broken = 0 ]
