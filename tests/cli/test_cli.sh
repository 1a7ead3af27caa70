#!/bin/sh
# test_cli.sh - command-line behaviour of iseg: exit codes, error lines, output files.
#
# usage: sh tests/cli/test_cli.sh ISEG_BINARY SOURCE_DIR     (POSIX sh; ctest runs it)
#
# Every check prints one line ("ok" or "FAIL" with expected vs got); the script runs them
# all, ends with "cli: N passed, N failed, N skipped" and exits 1 if any check failed.
# The fixtures in tests/cli/data are small and hand-written; their expected numbers were
# worked out by hand (see "fixture arithmetic" below). Checks on the real COCO files use
# $ISEG_SHARED_DIR or SOURCE_DIR/../shared and are skipped when those are absent.
#
# The contract checked here:
#   - success: exit 0; a usage error or bad input: exit 2, nothing on stdout, and the last
#     line of stderr is the only one starting with "iseg: " (for bad input files it is the
#     only line at all) and names the option or the file (and the element) at fault;
#   - output files are written atomically: a failed write leaves neither the file nor a
#     temporary "*.tmp.*" behind; a failed write to stdout is an error too.
#
# fixture arithmetic (tests/cli/data/gt.json + dt.json, segm; bbox gives the same IoUs):
#   cat (id 1): gt 1 (10x10, img 1), gt 3 (36x36 = 1296 px, medium, img 2), gt 4 crowd.
#     dt 0.9 img 1 (gt 1 shifted by one column): IoU 90/110 = 0.818 -> tp at 0.50..0.80
#     dt 0.7 img 2 (28x28 inside gt 3): IoU 784/1296 = 0.605          -> tp at 0.50..0.60
#     dt 0.6 img 2 inside the crowd region                            -> ignored
#     dt 0.4 img 1 on background                                      -> fp (lowest score)
#     AP per threshold 1 (x3), 0.50495 = 51/101 (x4), 0 (x3): AP 0.502, AP50 1, AP75 0.505
#   dog (id 2): gt 2 (15x15, img 1), gt 5 (triangle, img 2).
#     dt 0.8 img 1 on gt 2: IoU 196/225 = 0.871 -> tp at 0.50..0.85; two lower fps
#     AP per threshold 0.50495 (x8), 0 (x2): AP 0.404, AP50 = AP75 = 0.505
#   mean: AP 0.453, AP50 0.752, AP75 0.505, AP_small 0.552 (cat small = 0.7),
#   AP_medium 0.300 (cat only), AR 0.450 (cat 0.5, dog 0.4), AR_small 0.550, AR_medium 0.300.
#   dt_perfect.json repeats every non-crowd gt: AP = AR = 1.000 for segm, bbox and boundary.

set -u

ISEG=${1:-}
SRC=${2:-}
if [ -z "$ISEG" ] || [ -z "$SRC" ]; then
    echo "usage: sh test_cli.sh ISEG_BINARY SOURCE_DIR" >&2
    exit 2
fi
if [ ! -x "$ISEG" ]; then
    echo "test_cli.sh: $ISEG is not an executable" >&2
    exit 1
fi
DATA=$SRC/tests/cli/data
if [ ! -f "$DATA/gt.json" ]; then
    echo "test_cli.sh: fixtures not found in $DATA" >&2
    exit 1
fi
SHARED=${ISEG_SHARED_DIR:-$SRC/../shared}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/iseg-cli.XXXXXX") || {
    echo "test_cli.sh: mktemp -d failed" >&2
    exit 1
}
trap 'rm -rf "$TMP"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# a hung binary must not hang ctest
TO=
# per command; sanitizer builds are slower (ctest sets the multiplier there)
if command -v timeout >/dev/null 2>&1; then
    TO="timeout $((60 * ${ISEG_TEST_TIMEOUT_MULTIPLIER:-1}))"
fi
# python3 validates JSON when there is one; resolve it once (version-manager shims are slow)
HAVE_PY=0
PY=$(python3 -c 'import json, sys; print(sys.executable)' 2>/dev/null) && [ -x "$PY" ] && HAVE_PY=1

G=$DATA/gt.json
D=$DATA/dt.json
OUT=$TMP/stdout
ERR=$TMP/stderr

PASS=0
FAIL=0
SKIP=0
FAILED=

# ---- the check machinery -------------------------------------------------------------
# begin NAME; any number of want_* (each records why it is unhappy); end.
begin() {
    CASE=$1
    WHY=
}
bad() {
    WHY="$WHY$1
"
}
end() {
    if [ -z "$WHY" ]; then
        PASS=$((PASS + 1))
        printf 'ok    %s\n' "$CASE"
    else
        FAIL=$((FAIL + 1))
        FAILED="$FAILED  $CASE
"
        printf 'FAIL  %s\n' "$CASE"
        printf '%s' "$WHY" | sed 's/^/        /'
    fi
}
skip() {
    SKIP=$((SKIP + 1))
    printf 'skip  %s\n' "$1"
}

# show a captured stream in a failure message (first lines, a bit of it)
show() {
    if [ -s "$1" ]; then head -n 4 "$1" | cut -c 1-200 | sed 's/^/| /'; else echo "(empty)"; fi
}

# run ARGS...: runs iseg with stdin from /dev/null; RC, $OUT and $ERR hold the result
run() {
    $TO "$ISEG" "$@" <"/dev/null" >"$OUT" 2>"$ERR"
    RC=$?
}
# run_in FILE ARGS...: the same with stdin from FILE
run_in() {
    RUN_IN=$1
    shift
    $TO "$ISEG" "$@" <"$RUN_IN" >"$OUT" 2>"$ERR"
    RC=$?
}

rc_words() {
    if [ "$1" = 124 ] && [ -n "$TO" ]; then echo "$1 (timed out)"
    elif [ "$1" -gt 128 ]; then echo "$1 (killed by signal $(($1 - 128)): a crash?)"
    else echo "$1"; fi
}
want_rc() {
    [ "$RC" = "$1" ] || bad "exit code: expected $1, got $(rc_words "$RC"); stderr:
$(show "$ERR")"
}
want_no_stdout() {
    [ ! -s "$OUT" ] || bad "stdout: expected nothing, got $(wc -c <"$OUT" | tr -d ' ') bytes:
$(show "$OUT")"
}
want_no_stderr() {
    [ ! -s "$ERR" ] || bad "stderr: expected nothing, got:
$(show "$ERR")"
}
n_lines() { grep -c '' "$1"; }
want_lines() { # FILE N WHAT
    WL_N=$(n_lines "$1")
    [ "$WL_N" = "$2" ] || bad "$3: expected $2 lines, got $WL_N:
$(show "$1")"
}
want_has() { # FILE TEXT WHAT: TEXT appears (fixed string)
    grep -F -q -e "$2" "$1" 2>/dev/null || bad "$3: expected to contain '$2', got:
$(show "$1")"
}
want_line() { # FILE N TEXT WHAT: line N is exactly TEXT
    WL_GOT=$(sed -n "${2}p" "$1")
    [ "$WL_GOT" = "$3" ] || bad "$4 line $2:
          expected '$3'
          got      '$WL_GOT'"
}
# the error contract: the last line of stderr starts with "iseg: ", no other line does,
# and the last line contains each further argument
want_err() {
    WE_LAST=$(tail -n 1 "$ERR")
    case "$WE_LAST" in
    "iseg: "*) ;;
    *) bad "stderr: expected a last line starting with 'iseg: ', got:
$(show "$ERR")" ;;
    esac
    WE_N=$(grep -c '^iseg:' "$ERR")
    [ "$WE_N" -le 1 ] || bad "stderr: expected one 'iseg: ' line, got $WE_N:
$(grep '^iseg:' "$ERR" | head -n 4 | sed 's/^/| /')"
    for WE_S in "$@"; do want_last_has "$WE_S"; done
}
want_last_has() { # TEXT: the last line of stderr contains TEXT (fixed string)
    WL_LAST=$(tail -n 1 "$ERR")
    case "$WL_LAST" in
    *"$1"*) ;;
    *) bad "error line: expected it to contain '$1', got '$WL_LAST'" ;;
    esac
}
# a usage error: exit 2, nothing on stdout, the error contract
want_usage_error() {
    want_rc 2
    want_no_stdout
    want_err "$@"
}
# bad input: as a usage error, and the error is the only line on stderr
want_input_error() {
    want_usage_error "$@"
    want_lines "$ERR" 1 "stderr"
}
# exit 0, nothing on stderr, the 12 summary lines on stdout
want_summary_ok() {
    want_rc 0
    want_no_stderr
    want_lines "$OUT" 12 "stdout (the summary)"
}
no_tmp_left() { # DIR: no "*.tmp.*" anywhere below DIR
    NT=$(find "$1" -name '*.tmp.*' 2>/dev/null | head -n 3)
    [ -z "$NT" ] || bad "temporary files left behind: $NT"
}
json_ok() { # FILE WHAT: FILE is one JSON document
    if [ "$HAVE_PY" = 1 ]; then
        "$PY" -c 'import json,sys; json.load(sys.stdin)' <"$1" 2>"$TMP/pyerr" ||
            bad "$2: not valid JSON ($(tail -n 1 "$TMP/pyerr")):
$(show "$1")"
    else
        WJ_FIRST=$(head -c 1 "$1")
        [ "$WJ_FIRST" = "{" ] || bad "$2: expected a JSON object, got:
$(show "$1")"
    fi
}
# the report's shape: iou_type T, 12 numeric stats, per_category with N entries, timings_s
json_report_ok() { # FILE IOU_TYPE N_CATS WHAT
    if [ "$HAVE_PY" = 1 ]; then
        JR=$("$PY" - "$1" "$2" "$3" <<'EOF' 2>&1
import json, numbers, sys
path, iou_type, n_cats = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    d = json.load(open(path))
except ValueError as e:
    print("not valid JSON (%s)" % e)
    sys.exit(0)
errs = []
def num(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool)
if not isinstance(d, dict):
    errs.append("expected an object, got %s" % type(d).__name__)
else:
    for k in ("iou_type", "stats", "per_category", "timings_s"):
        if k not in d:
            errs.append("no key %r (keys: %s)" % (k, sorted(d)))
    if d.get("iou_type") != iou_type:
        errs.append("iou_type: expected %r, got %r" % (iou_type, d.get("iou_type")))
    s = d.get("stats")
    if not (isinstance(s, list) and len(s) == 12 and all(num(x) for x in s)):
        errs.append("stats: expected 12 numbers, got %r" % (s,))
    pc = d.get("per_category")
    if not (isinstance(pc, list) and len(pc) == n_cats):
        errs.append("per_category: expected %d entries, got %r" % (n_cats, pc))
    else:
        for c in pc:
            for k in ("id", "name", "ap", "ap50", "ap75", "ar", "n_gt", "n_dt"):
                if not isinstance(c, dict) or k not in c:
                    errs.append("per_category entry without %r: %r" % (k, c))
                    break
    t = d.get("timings_s")
    if not (isinstance(t, dict) and t and all(num(x) for x in t.values())):
        errs.append("timings_s: expected an object of numbers, got %r" % (t,))
print("\n".join(errs))
EOF
)
        [ -z "$JR" ] || bad "$4: $JR"
    else
        json_ok "$1" "$4"
        for JK in '"iou_type": "'"$2"'"' '"stats": [' '"per_category": [' '"timings_s": {'; do
            want_has "$1" "$JK" "$4"
        done
    fi
}
# the stats array of a report, as printed (one line, "a, b, c, ...")
stats_of() { sed -n 's/^ *"stats": *\[\(.*\)\],* *$/\1/p' "$1"; }
# a report without its timings (the only part that may differ between runs)
untimed() { grep -v '"timings_s"' "$1" | grep -v '"load"'; }

# the summary of gt.json + dt.json, in pycocotools' layout (values: see the header)
cat >"$TMP/summary.expected" <<'EOF'
 Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.453
 Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.752
 Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.505
 Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.552
 Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.300
 Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.450
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 0.450
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.450
 Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.550
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.300
 Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000
EOF
want_summary() { # FILE WHAT: FILE is exactly the expected summary
    cmp -s "$1" "$TMP/summary.expected" || bad "$2: differs from the expected summary:
$(diff "$TMP/summary.expected" "$1" | head -n 8 | sed 's/^/| /')"
}

echo "iseg CLI tests: $ISEG"

# ---- top level -----------------------------------------------------------------------
begin "iseg (no arguments): usage on stderr, exit 2"
run
want_rc 2
want_no_stdout
want_has "$ERR" "usage: iseg" "stderr"
end

for a in help --help -h; do
    begin "iseg $a: usage on stdout, exit 0"
    run "$a"
    want_rc 0
    want_no_stderr
    want_has "$OUT" "usage: iseg" "stdout"
    want_has "$OUT" "eval" "stdout"
    end
done

for a in version --version; do
    begin "iseg $a: one line 'iseg X.Y.Z', exit 0"
    run "$a"
    want_rc 0
    want_no_stderr
    want_lines "$OUT" 1 "stdout"
    grep -q '^iseg [0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*' "$OUT" ||
        bad "stdout: expected 'iseg X.Y.Z', got '$(head -n 1 "$OUT")'"
    end
done

begin "iseg frobnicate (unknown command): exit 2, one 'iseg: ' line naming it"
run frobnicate
want_usage_error "frobnicate"
end

# ---- eval: options -------------------------------------------------------------------
for a in --help -h; do
    begin "iseg eval $a: exit 0, options on stdout"
    run eval "$a"
    want_rc 0
    want_no_stderr
    for o in --gt --dt --iou-type --threads --json --max-dets --area-rng --use-cats \
        --per-category --plot --matches --matching; do
        want_has "$OUT" "$o" "stdout"
    done
    end
done

# bad_opt OPTION-NAMED ARGS...: eval with ARGS is a usage error naming OPTION-NAMED
bad_opt() {
    BO_NAME=$1
    shift
    begin "iseg eval $* -> exit 2, error names $BO_NAME"
    run eval "$@"
    want_usage_error "$BO_NAME"
    end
}
bad_opt --frobnicate --gt "$G" --dt "$D" --frobnicate
bad_opt stray.json --gt "$G" --dt "$D" stray.json
bad_opt --gt --dt "$D" --gt
bad_opt --dt --gt "$G" --dt
bad_opt --iou-type --gt "$G" --dt "$D" --iou-type
bad_opt --json --gt "$G" --dt "$D" --json
bad_opt --threads --gt "$G" --dt "$D" --threads
bad_opt --iou-type --gt "$G" --dt "$D" --iou-type mask
bad_opt --iou-type --gt "$G" --dt "$D" --iou-type=SEGM
bad_opt --threads --gt "$G" --dt "$D" --threads many
bad_opt --threads --gt "$G" --dt "$D" --threads -1
bad_opt --threads --gt "$G" --dt "$D" --threads 1.5
bad_opt --threads --gt "$G" --dt "$D" --threads 100000
bad_opt --threads --gt "$G" --dt "$D" --threads ""
bad_opt --max-dets --gt "$G" --dt "$D" --max-dets 1,10
bad_opt --max-dets --gt "$G" --dt "$D" --max-dets 1,10,100,1000
bad_opt --max-dets --gt "$G" --dt "$D" --max-dets 0,10,100
bad_opt --max-dets --gt "$G" --dt "$D" --max-dets 1,2.5,100
bad_opt --max-dets --gt "$G" --dt "$D" --max-dets a,b,c
bad_opt --max-dets --gt "$G" --dt "$D" --max-dets 100,10,1
bad_opt --area-rng --gt "$G" --dt "$D" --area-rng 0:1e10
bad_opt --area-rng --gt "$G" --dt "$D" --area-rng 0-1,0-1,0-1,0-1
bad_opt --area-rng --gt "$G" --dt "$D" --area-rng 0:1,0:1,0:1,0:1,0:1
bad_opt --area-rng --gt "$G" --dt "$D" --area-rng 0:1e10,1024:0,1024:9216,9216:1e10
bad_opt --use-cats --gt "$G" --dt "$D" --use-cats 2
bad_opt --use-cats --gt "$G" --dt "$D" --use-cats yes
bad_opt --matching --gt "$G" --dt "$D" --matching greedy
bad_opt --iou-thrs --gt "$G" --dt "$D" --iou-thrs x
bad_opt --iou-thrs --gt "$G" --dt "$D" --iou-thrs 0.5,1.5
bad_opt --dilation-ratio --gt "$G" --dt "$D" --dilation-ratio x
bad_opt --dilation-ratio --gt "$G" --dt "$D" --dilation-ratio 2
bad_opt --cats --gt "$G" --dt "$D" --cats one
bad_opt --imgs --gt "$G" --dt "$D" --imgs 1,x
bad_opt --matches-iou --gt "$G" --dt "$D" --matches-iou x
bad_opt --matches-iou --gt "$G" --dt "$D" --iou-thrs 0.5,0.75 --matches-iou 0.6 \
    --matches "$TMP/m_bad.csv"
# 0.52 is not one of the default thresholds 0.50:0.05:0.95 either
bad_opt --matches-iou --gt "$G" --dt "$D" --matches-iou 0.52 --matches "$TMP/m_bad.csv"
bad_opt --gt --dt "$D"
bad_opt --dt --gt "$G"
bad_opt --gt

begin "usage errors leave no output file behind"
[ ! -e "$TMP/m_bad.csv" ] || bad "$TMP/m_bad.csv was written"
no_tmp_left "$TMP"
end

# ---- eval: bad input files -----------------------------------------------------------
# bad_input NAME ARGS...: eval ARGS fails: exit 2, no summary, one "iseg: " line on stderr;
# the caller adds want_last_has TEXT checks and calls end
bad_input() {
    begin "$1: exit 2, one 'iseg: ' line, no summary"
    shift
    run eval "$@"
    want_input_error
}
printf '[{"image_id": 1, "category_id": 1' >"$TMP/truncated.json"
: >"$TMP/empty_file.json"
bad_input "missing GT file" --gt "$TMP/no_such_gt.json" --dt "$D"
want_last_has "no_such_gt.json"
end
bad_input "missing results file" --gt "$G" --dt "$TMP/no_such_dt.json"
want_last_has "no_such_dt.json"
end
bad_input "invalid JSON as GT (file:line:col)" --gt "$DATA/bad_json.json" --dt "$D"
want_last_has "bad_json.json:4:"
want_last_has "invalid JSON"
end
bad_input "invalid JSON as results (file:line:col)" --gt "$G" --dt "$DATA/bad_json.json"
want_last_has "bad_json.json:4:"
want_last_has "invalid JSON"
end
bad_input "truncated results file" --gt "$G" --dt "$TMP/truncated.json"
want_last_has "truncated.json:1:"
end
bad_input "empty results file" --gt "$G" --dt "$TMP/empty_file.json"
want_last_has "empty_file.json"
end
bad_input "a results list given as GT" --gt "$D" --dt "$D"
want_last_has "dt.json"
end
bad_input "results for an unknown image id" --gt "$G" --dt "$DATA/dt_unknown_img.json"
want_last_has "dt_unknown_img.json"
want_last_has "results[1]"
want_last_has "42"
end
bad_input "GT without iscrowd" --gt "$DATA/gt_no_iscrowd.json" --dt "$D"
want_last_has "gt_no_iscrowd.json"
want_last_has "annotations[1] (id 8)"
want_last_has "iscrowd"
end
bad_input "invalid RLE counts string" --gt "$G" --dt "$DATA/dt_bad_rle.json"
want_last_has "dt_bad_rle.json"
want_last_has "results[1]"
want_last_has "RLE"
end
bad_input "polygon with an odd coordinate count" --gt "$G" --dt "$DATA/dt_odd_poly.json"
want_last_has "dt_odd_poly.json"
want_last_has "results[0]"
want_last_has "odd"
end
bad_input "a directory as GT" --gt "$TMP" --dt "$D"
want_last_has "$TMP"
end

begin "--gt - --dt - (both from stdin): exit 2, one 'iseg: ' line"
run_in "$D" eval --gt - --dt -
want_input_error "stdin"
end

# ---- eval: good runs -----------------------------------------------------------------
begin "eval gt.json dt.json: the 12 summary lines, pycocotools' layout and values"
run eval --gt "$G" --dt "$D"
want_summary_ok
want_line "$OUT" 1 " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.453" \
    "stdout"
want_summary "$OUT" "stdout"
end

begin "--gt=FILE --dt=FILE (the = form)"
run eval --gt="$G" --dt="$D"
want_summary_ok
want_summary "$OUT" "stdout"
end

begin "--dt - reads the results from stdin"
run_in "$D" eval --gt "$G" --dt -
want_summary_ok
want_summary "$OUT" "stdout"
end

begin "--gt - reads the ground truth from stdin"
run_in "$G" eval --gt - --dt "$D"
want_summary_ok
want_summary "$OUT" "stdout"
end

begin "--json -: only JSON on stdout, the summary on stderr"
run eval --gt "$G" --dt "$D" --json -
want_rc 0
json_report_ok "$OUT" segm 2 "stdout"
want_summary "$ERR" "stderr"
cp "$OUT" "$TMP/report_stdout.json"
end

begin "--json FILE: the report (iou_type, stats, per_category, timings_s), summary on stdout"
run eval --gt "$G" --dt "$D" --json "$TMP/report.json"
want_summary_ok
want_summary "$OUT" "stdout"
if [ -f "$TMP/report.json" ]; then
    json_report_ok "$TMP/report.json" segm 2 "$TMP/report.json"
    untimed "$TMP/report.json" >"$TMP/a"
    untimed "$TMP/report_stdout.json" >"$TMP/b"
    cmp -s "$TMP/a" "$TMP/b" || bad "--json FILE and --json - differ (beyond timings)"
else
    bad "$TMP/report.json: not written"
fi
no_tmp_left "$TMP"
end

begin "--json FILE overwrites an existing file"
echo "old" >"$TMP/report.json"
run eval --gt "$G" --dt "$D" --json "$TMP/report.json"
want_summary_ok
json_ok "$TMP/report.json" "$TMP/report.json"
no_tmp_left "$TMP"
end

begin "--json into a missing directory: exit 2, no file, no *.tmp.*"
run eval --gt "$G" --dt "$D" --json "$TMP/nodir/report.json"
want_rc 2
want_err "nodir/report.json"
[ ! -e "$TMP/nodir" ] || bad "$TMP/nodir was created"
no_tmp_left "$TMP"
end

begin "--json onto a directory: exit 2, no *.tmp.* left"
mkdir "$TMP/isdir"
run eval --gt "$G" --dt "$D" --json "$TMP/isdir"
want_rc 2
want_err "isdir"
no_tmp_left "$TMP"
rmdir "$TMP/isdir" 2>/dev/null || bad "$TMP/isdir is no longer an empty directory"
end

begin "--threads 1 and --threads 4: byte-identical reports (beyond timings)"
run eval --gt "$G" --dt "$D" --threads 1 --json "$TMP/t1.json"
want_summary_ok
run eval --gt "$G" --dt "$D" --threads 4 --json "$TMP/t4.json"
want_summary_ok
untimed "$TMP/t1.json" >"$TMP/a" 2>/dev/null
untimed "$TMP/t4.json" >"$TMP/b" 2>/dev/null
if [ ! -s "$TMP/a" ] || ! cmp -s "$TMP/a" "$TMP/b"; then
    bad "stats: --threads 1 gave [$(stats_of "$TMP/t1.json")], --threads 4 gave [$(stats_of "$TMP/t4.json")]"
fi
end

begin "--threads 0 (one per CPU) runs"
run eval --gt "$G" --dt "$D" --threads 0
want_summary_ok
want_summary "$OUT" "stdout"
end

begin "--iou-type bbox: same IoUs here, so the same summary"
run eval --gt "$G" --dt "$D" --iou-type bbox --json "$TMP/bbox.json"
want_summary_ok
want_summary "$OUT" "stdout"
json_report_ok "$TMP/bbox.json" bbox 2 "$TMP/bbox.json"
end

begin "--iou-type boundary runs"
run eval --gt "$G" --dt "$D" --iou-type boundary --json "$TMP/boundary.json"
want_summary_ok
json_report_ok "$TMP/boundary.json" boundary 2 "$TMP/boundary.json"
end

for t in segm bbox boundary; do
    begin "perfect results, --iou-type $t: AP = AR = 1.000"
    run eval --gt "$G" --dt "$DATA/dt_perfect.json" --iou-type "$t"
    want_summary_ok
    want_line "$OUT" 1 " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000" "stdout"
    want_line "$OUT" 5 " Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 1.000" "stdout"
    want_line "$OUT" 9 " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000" "stdout"
    end
done

begin "empty results []: exit 0, AP and AR 0.000 where GT exists"
run eval --gt "$G" --dt "$DATA/dt_empty.json"
want_summary_ok
want_line "$OUT" 1 " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.000" "stdout"
want_line "$OUT" 9 " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.000" "stdout"
want_line "$OUT" 6 " Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000" "stdout"
end

begin "--per-category: the summary, then a table with AP50 and the hand-computed rows"
run eval --gt "$G" --dt "$D" --per-category
want_rc 0
want_no_stderr
head -n 12 "$OUT" >"$TMP/a"
want_summary "$TMP/a" "stdout"
HDR=$(grep 'AP50' "$OUT" | head -n 1)
case "$HDR" in
*category*AP*AP50*AP75*) ;;
*) bad "stdout: expected a header line with category, AP, AP50, AP75; got '$HDR'" ;;
esac
awk '{$1 = $1; print}' "$OUT" >"$TMP/b"
want_has "$TMP/b" "cat 1 0.502 1.000 0.505 0.500 2 4" "per-category table"
want_has "$TMP/b" "dog 2 0.404 0.505 0.505 0.400 2 3" "per-category table"
end

begin "--per-category --json -: stdout is still only the JSON document"
run eval --gt "$G" --dt "$D" --per-category --json -
want_rc 0
json_report_ok "$OUT" segm 2 "stdout"
want_has "$ERR" "AP50" "stderr"
end

begin "--plot DIR: DIR/pr_curves.csv and DIR/pr_curves.png"
run eval --gt "$G" --dt "$D" --plot "$TMP/plots"
want_summary_ok
if [ -f "$TMP/plots/pr_curves.csv" ]; then
    want_line "$TMP/plots/pr_curves.csv" 1 "category_id,category,iou_threshold,recall,precision" \
        "pr_curves.csv"
    # 2 categories x 10 thresholds x 101 recall points
    NR=$(($(n_lines "$TMP/plots/pr_curves.csv") - 1))
    [ "$NR" -ge 2020 ] || bad "pr_curves.csv: expected at least 2020 rows, got $NR"
else
    bad "$TMP/plots/pr_curves.csv: not written"
fi
MAGIC=$(od -An -tx1 -N8 "$TMP/plots/pr_curves.png" 2>/dev/null | tr -d ' \n')
[ "$MAGIC" = "89504e470d0a1a0a" ] || bad "pr_curves.png: expected the PNG signature 89504e470d0a1a0a, got '$MAGIC'"
no_tmp_left "$TMP"
end

begin "--plot DIR --per-category: also DIR/pr_1.png and DIR/pr_2.png"
run eval --gt "$G" --dt "$D" --plot "$TMP/plots2" --per-category
want_rc 0
for f in pr_curves.csv pr_curves.png pr_1.png pr_2.png; do
    [ -s "$TMP/plots2/$f" ] || bad "$TMP/plots2/$f: not written"
done
end

begin "--plot onto a regular file: exit 2, one 'iseg: ' line"
echo x >"$TMP/plotfile"
run eval --gt "$G" --dt "$D" --plot "$TMP/plotfile"
want_rc 2
want_err "plotfile"
end

MATCH_HEADER="image_id,category_id,dt_id,score,gt_id,iou,dice,status,iou_threshold"
begin "--matches FILE.csv: header, and tp/fp/ignored/fn rows as worked out by hand"
run eval --gt "$G" --dt "$D" --matches "$TMP/m.csv"
want_summary_ok
if [ -f "$TMP/m.csv" ]; then
    want_line "$TMP/m.csv" 1 "$MATCH_HEADER" "matches.csv"
    for s in tp fp fn; do
        grep -q ",$s," "$TMP/m.csv" || bad "matches.csv: no row with status $s"
    done
    # image, category, gt id, status, threshold of every row (IoU 0.5, area all)
    sed 1d "$TMP/m.csv" | awk -F, '{print $1 "," $2 "," $5 "," $8 "," $9}' | sort >"$TMP/a"
    sort >"$TMP/b" <<'EOF'
1,1,1,tp,0.5
1,1,,fp,0.5
1,2,2,tp,0.5
2,1,3,tp,0.5
2,1,4,ignored,0.5
2,2,,fp,0.5
2,2,5,fn,0.5
3,2,,fp,0.5
EOF
    cmp -s "$TMP/a" "$TMP/b" || bad "matches.csv rows (image,cat,gt,status,thr) differ:
$(diff "$TMP/b" "$TMP/a" | sed 's/^/| /')"
    # the top cat detection: IoU 90/110, Dice 180/200
    grep -q '^1,1,[0-9]*,0\.9[0-9]*,1,0\.8181818181818[0-9]*,0\.9[0-9]*,tp,0\.5$' "$TMP/m.csv" ||
        bad "matches.csv: expected the row 1,1,<dt>,0.9,1,0.818...,0.9...,tp,0.5, got:
$(grep '^1,1,' "$TMP/m.csv" | sed 's/^/| /')"
else
    bad "$TMP/m.csv: not written"
fi
no_tmp_left "$TMP"
end

begin "--matches with --matches-iou 0.9: rows at threshold 0.9"
run eval --gt "$G" --dt "$D" --matches "$TMP/m09.csv" --matches-iou 0.9
want_summary_ok
if [ -f "$TMP/m09.csv" ]; then
    THR=$(sed 1d "$TMP/m09.csv" | awk -F, '{print $9}' | sort -u | tr '\n' ' ')
    [ "$THR" = "0.9 " ] || bad "matches.csv iou_threshold column: expected '0.9', got '$THR'"
    # at 0.9 nothing matches: every detection but the crowd one is fp, every gt fn
    NTP=$(grep -c ',tp,' "$TMP/m09.csv")
    [ "$NTP" = 0 ] || bad "matches.csv at IoU 0.9: expected 0 tp rows, got $NTP"
else
    bad "$TMP/m09.csv: not written"
fi
end

begin "--matches into a missing directory: exit 2, no file, no *.tmp.*"
run eval --gt "$G" --dt "$D" --matches "$TMP/nodir/m.csv"
want_rc 2
want_err "nodir/m.csv"
[ ! -e "$TMP/nodir" ] || bad "$TMP/nodir was created"
no_tmp_left "$TMP"
end

begin "--use-cats 0 runs"
run eval --gt "$G" --dt "$D" --use-cats 0
want_summary_ok
end

begin "--cats 1: AP of the cat category alone (0.502)"
run eval --gt "$G" --dt "$D" --cats 1
want_summary_ok
want_line "$OUT" 1 " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.502" "stdout"
end

begin "--cats 2,1: the same as all categories"
run eval --gt "$G" --dt "$D" --cats 2,1
want_summary_ok
want_summary "$OUT" "stdout"
end

begin "--imgs 1: image 1 alone (AP 0.750)"
run eval --gt "$G" --dt "$D" --imgs 1
want_summary_ok
want_line "$OUT" 1 " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.750" "stdout"
end

begin "--max-dets 1,5,20: the labels follow"
run eval --gt "$G" --dt "$D" --max-dets 1,5,20
want_summary_ok
want_line "$OUT" 1 " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets= 20 ] = 0.453" "stdout"
want_line "$OUT" 7 " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.450" "stdout"
want_line "$OUT" 8 " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  5 ] = 0.450" "stdout"
end

begin "--iou-thrs 0.5,0.75: the range label and AP (1 + 3 x 0.50495) / 4 = 0.629"
run eval --gt "$G" --dt "$D" --iou-thrs 0.5,0.75
want_summary_ok
want_line "$OUT" 1 " Average Precision  (AP) @[ IoU=0.50:0.75 | area=   all | maxDets=100 ] = 0.629" "stdout"
want_line "$OUT" 2 " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.752" "stdout"
end

begin "--area-rng with four custom ranges runs"
run eval --gt "$G" --dt "$D" --area-rng 0:1e10,0:100,100:1000,1000:1e10
want_summary_ok
end

begin "--matching hungarian runs"
run eval --gt "$G" --dt "$D" --matching hungarian
want_summary_ok
end

begin "--dilation-ratio 0.05 with --iou-type boundary runs"
run eval --gt "$G" --dt "$D" --iou-type boundary --dilation-ratio 0.05
want_summary_ok
end

begin "results with an unknown category: dropped silently, exit 0"
run eval --gt "$G" --dt "$DATA/dt_unknown_cat.json"
want_summary_ok
end

begin "-v with an unknown category: the drop is reported once"
run eval --gt "$G" --dt "$DATA/dt_unknown_cat.json" -v
want_rc 0
want_lines "$OUT" 12 "stdout (the summary)"
ND=$(grep -c 'dropped' "$ERR")
[ "$ND" = 1 ] || bad "stderr: expected one line about dropped results, got $ND:
$(show "$ERR")"
end

# ---- eval: writing to a full stdout --------------------------------------------------
if [ -w /dev/full ]; then
    begin "summary to a full stdout (>/dev/full): exit non-zero with an 'iseg: ' line"
    $TO "$ISEG" eval --gt "$G" --dt "$D" </dev/null >/dev/full 2>"$ERR"
    RC=$?
    [ "$RC" != 0 ] || bad "exit code: expected non-zero, got 0 (the summary was lost silently)"
    want_err
    end

    begin "--json - to a full stdout (>/dev/full): exit non-zero with an 'iseg: ' line"
    $TO "$ISEG" eval --gt "$G" --dt "$D" --json - </dev/null >/dev/full 2>"$ERR"
    RC=$?
    [ "$RC" != 0 ] || bad "exit code: expected non-zero, got 0 (the JSON report was lost silently)"
    want_err
    end
else
    skip "writing to a full stdout (no /dev/full here)"
fi

# ---- the real COCO files (shared data) -----------------------------------------------
CE=$SHARED/data/coco-eval
if [ -f "$CE/val2014_100_gt.json" ] && [ -f "$CE/val2014_100_segm_results.json" ]; then
    begin "val2014_100 segm --json -: AP 0.31954527585764331 (the reference's, %.17g)"
    run eval --gt "$CE/val2014_100_gt.json" --dt "$CE/val2014_100_segm_results.json" --json -
    want_rc 0
    json_ok "$OUT" "stdout"
    AP=$(stats_of "$OUT" | cut -d, -f1 | tr -d ' ')
    [ "$AP" = "0.31954527585764331" ] || bad "stats[0]: expected 0.31954527585764331, got '$AP'"
    cp "$OUT" "$TMP/real_segm.json"
    end

    if [ "$HAVE_PY" = 1 ] && [ -f "$CE/expected_stats.json" ]; then
        begin "val2014_100 segm and bbox: all 12 stats equal the reference's"
        run eval --gt "$CE/val2014_100_gt.json" --dt "$CE/val2014_100_bbox_results.json" \
            --iou-type bbox --json "$TMP/real_bbox.json"
        want_rc 0
        RS=$("$PY" - "$CE/expected_stats.json" "$TMP/real_segm.json" "$TMP/real_bbox.json" <<'EOF' 2>&1
import json, sys
exp = json.load(open(sys.argv[1]))["val2014_100"]
for t, path in (("segm", sys.argv[2]), ("bbox", sys.argv[3])):
    try:
        got = json.load(open(path))["stats"]
    except Exception as e:
        print("%s: no report (%s)" % (t, e))
        continue
    want = exp[t]["stats"]
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            print("%s stats[%d]: expected %.17g, got %.17g" % (t, i, w, g))
    if len(got) != len(want):
        print("%s: expected %d stats, got %d" % (t, len(want), len(got)))
EOF
)
        [ -z "$RS" ] || bad "$RS"
        end
    else
        skip "val2014_100: comparing all 12 stats needs python3 and expected_stats.json"
    fi

    begin "val2014_100 segm: --threads 1 and --threads 4 give byte-identical reports"
    run eval --gt "$CE/val2014_100_gt.json" --dt "$CE/val2014_100_segm_results.json" \
        --threads 1 --json "$TMP/r1.json"
    want_rc 0
    run eval --gt "$CE/val2014_100_gt.json" --dt "$CE/val2014_100_segm_results.json" \
        --threads 4 --json "$TMP/r4.json"
    want_rc 0
    untimed "$TMP/r1.json" >"$TMP/a" 2>/dev/null
    untimed "$TMP/r4.json" >"$TMP/b" 2>/dev/null
    if [ ! -s "$TMP/a" ] || ! cmp -s "$TMP/a" "$TMP/b"; then
        bad "reports differ: --threads 1 stats [$(stats_of "$TMP/r1.json")], --threads 4 stats [$(stats_of "$TMP/r4.json")]"
    fi
    end
else
    skip "real COCO data: $CE/val2014_100_gt.json not found (set ISEG_SHARED_DIR)"
fi

# ---- iseg panoptic --------------------------------------------------------------------
begin "panoptic: no subcommand prints usage and exits 2, --help exits 0"
run panoptic
want_rc 2
run panoptic --help
want_rc 0
want_has "$OUT" "eval" "panoptic --help"
end

begin "panoptic: unknown subcommand: exit 2, one error line naming it"
run panoptic frobnicate
want_rc 2
want_err "frobnicate"
end

for sub in eval fuse convert; do
    begin "panoptic $sub --help: exit 0"
    run panoptic "$sub" --help
    want_rc 0
    end
done

begin "panoptic eval: missing ground-truth JSON: exit 2, one error line naming the file"
run panoptic eval --gt-json "$TMP/nope.json" --gt-dir "$TMP" --pred-json "$TMP/nope2.json" --pred-dir "$TMP"
want_rc 2
want_no_stdout
want_err "nope"
end

PS=$SHARED/data/panoptic/coco_sample
if [ -f "$PS/expected_pq.json" ] && command -v python3 >/dev/null 2>&1; then
    begin "panoptic eval on the real COCO sample: PQ and Boundary PQ equal expected_pq.json"
    for mode in pq boundary_pq; do
        extra=""
        [ "$mode" = boundary_pq ] && extra="--boundary"
        # shellcheck disable=SC2086
        run panoptic eval --gt-json "$PS/panoptic_examples.json" --gt-dir "$PS/panoptic_examples" \
            --pred-json "$PS/perturbed_pred.json" --pred-dir "$PS/perturbed_pred" $extra --json -
        want_rc 0
        PQ_DIFF=$(python3 -c '
import json, sys
got = json.load(open(sys.argv[1]))
want = json.load(open(sys.argv[2]))["gt_vs_perturbed"][sys.argv[3]]
bad = [(g, k) for g in ("All", "Things", "Stuff") for k in ("pq", "sq", "rq", "n")
       if abs(got[g][k] - want[g][k]) > 1e-12]
print(" ".join("%s.%s" % b for b in bad))' "$OUT" "$PS/expected_pq.json" "$mode" 2>&1)
        [ -z "$PQ_DIFF" ] || bad "$mode differs from expected_pq.json: $PQ_DIFF"
    done
    end
else
    skip "panoptic sample: $PS/expected_pq.json or python3 not found"
fi

# ---- predict and dump ------------------------------------------------------------------
printf 'not an image\n' >"$TMP/notimg.png"
printf 'PK\003\004garbage that is not a checkpoint' >"$TMP/corrupt.pth"

begin "predict: --model is required"
run predict "$TMP/notimg.png"
want_usage_error "--model"
end

begin "predict: a missing image is reported before the model is loaded"
run predict "$TMP/missing.png" --model "$TMP/corrupt.pth"
want_input_error "$TMP/missing.png" "cannot open"
end

begin "predict: a corrupt checkpoint names the file"
run predict "$DATA/gt.json" --model "$TMP/corrupt.pth" --out "$TMP/p0.json"
want_input_error "$TMP/corrupt.pth"
[ ! -e "$TMP/p0.json" ] || bad "results file written despite the error"
end

begin "predict: a checkpoint that is not Mask R-CNN is refused"
run predict "$DATA/gt.json" --model "$DATA/gt.json"
want_input_error "$DATA/gt.json"
end

begin "predict: unknown --arch"
run predict "$TMP/notimg.png" --model "$TMP/corrupt.pth" --arch resnet
want_usage_error "--arch" "resnet"
end

begin "predict: bad option values"
run predict "$TMP/notimg.png" --model "$TMP/corrupt.pth" --score-thresh 2
want_usage_error "--score-thresh"
end

begin "dump: --out is required"
run dump "$TMP/notimg.png" --model "$TMP/corrupt.pth"
want_usage_error "--out"
end

# with a real (random-weight) model, made by torchvision: the old tensor names and torch's
# legacy file format of the released checkpoints
if "$SRC/tools/maskrcnn_parity.py" --help >/dev/null 2>&1 &&
    /usr/bin/python3 -c 'import torchvision' >/dev/null 2>&1 &&
    /usr/bin/python3 "$SRC/tools/maskrcnn_parity.py" --arch v1 --min-size 96 --max-size 128 \
        --image natural:120x160 --seed 7 --out "$TMP/golden.safetensors" \
        --save-weights "$TMP/m.pth" --legacy --save-image "$TMP/img.png" >/dev/null 2>&1; then
    SMALL="--min-size 96 --max-size 128 --threads 2 --max-dets 12"

    begin "predict: results JSON and overlay from a legacy-format torchvision checkpoint"
    # shellcheck disable=SC2086
    run predict "$TMP/img.png" --model "$TMP/m.pth" $SMALL --out "$TMP/res.json" --viz "$TMP/viz.png"
    want_rc 0
    want_no_stderr
    want_has "$OUT" "img.png: 12 detections" "stdout"
    json_ok "$TMP/res.json" "results"
    [ -s "$TMP/viz.png" ] || bad "no overlay PNG"
    no_tmp_left "$TMP"
    end

    begin "predict: JPEG, grayscale and RGBA inputs are read and converted"
    /usr/bin/python3 -c '
import sys
from PIL import Image
im = Image.open(sys.argv[1])
im.save(sys.argv[2] + "/img.jpg", quality=92)
im.convert("L").save(sys.argv[2] + "/gray.png")
im.convert("RGBA").save(sys.argv[2] + "/rgba.png")' "$TMP/img.png" "$TMP"
    mkdir -p "$TMP/viz"
    # shellcheck disable=SC2086
    run predict "$TMP/img.jpg" "$TMP/gray.png" "$TMP/rgba.png" --model "$TMP/m.pth" $SMALL \
        --out "$TMP/res3.json" --viz "$TMP/viz"
    want_rc 0
    want_has "$OUT" "img.jpg: 12 detections" "stdout"
    want_has "$OUT" "gray.png: 12 detections" "stdout"
    [ -s "$TMP/viz/img.png" ] && [ -s "$TMP/viz/gray.png" ] || bad "overlays missing"
    # RGBA drops alpha (as PIL's convert("RGB")): the same results as the RGB image
    run predict "$TMP/rgba.png" --model "$TMP/m.pth" $SMALL --out "$TMP/res4.json"
    run predict "$TMP/img.png" --model "$TMP/m.pth" $SMALL --out "$TMP/res5.json"
    cmp -s "$TMP/res4.json" "$TMP/res5.json" || bad "RGBA and RGB results differ"
    end

    begin "predict: the results evaluate with iseg eval (--dataset uses the file's image ids)"
    mkdir -p "$TMP/ds"
    cp "$TMP/img.png" "$TMP/ds/img.png"
    cat >"$TMP/ds/gt.json" <<'EOF2'
{"images": [{"id": 42, "file_name": "img.png", "width": 160, "height": 120}],
 "annotations": [{"id": 1, "image_id": 42, "category_id": 18, "iscrowd": 0, "area": 1200,
   "bbox": [20, 40, 40, 30], "segmentation": [[20, 40, 60, 40, 60, 70, 20, 70]]}],
 "categories": [{"id": 18, "name": "dog"}, {"id": 68, "name": "cell phone"}]}
EOF2
    # shellcheck disable=SC2086
    run predict --dataset "$TMP/ds/gt.json" --images "$TMP/ds" --model "$TMP/m.pth" $SMALL \
        --out "$TMP/ds/res.json"
    want_rc 0
    want_has "$TMP/ds/res.json" '"image_id": 42' "results"
    run eval --gt "$TMP/ds/gt.json" --dt "$TMP/ds/res.json"
    want_summary_ok
    end

    begin "predict: an unwritable --out is one error line, and no file"
    # shellcheck disable=SC2086
    run predict "$TMP/img.png" --model "$TMP/m.pth" $SMALL --out "$TMP/nodir/res.json"
    want_input_error "$TMP/nodir/res.json"
    end

    begin "predict: a truncated image is one error line naming it; no partial results"
    head -c 300 "$TMP/img.png" >"$TMP/trunc.png"
    # shellcheck disable=SC2086
    run predict "$TMP/trunc.png" --model "$TMP/m.pth" $SMALL --out "$TMP/r2.json"
    want_input_error "$TMP/trunc.png"
    [ ! -e "$TMP/r2.json" ] || bad "results file written despite the error"
    no_tmp_left "$TMP"
    end

    begin "predict: a non-image input is one error line naming it"
    # shellcheck disable=SC2086
    run predict "$TMP/notimg.png" --model "$TMP/m.pth" $SMALL
    want_input_error "$TMP/notimg.png" "not a PNG or JPEG"
    end

    if [ "$HAVE_PY" = 1 ]; then
        begin "predict: an image over the pixel limit is refused before decoding"
        "$PY" -c '
import struct, sys, zlib
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
ihdr = struct.pack(">IIBBBBB", 70000, 70000, 8, 2, 0, 0, 0)
sys.stdout.buffer.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
                        chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))' \
            >"$TMP/huge.png"
        # shellcheck disable=SC2086
        run predict "$TMP/huge.png" --model "$TMP/m.pth" $SMALL
        want_input_error "$TMP/huge.png"
        end
    fi

    begin "predict: --arch v2 on v1 weights names the first tensor that does not fit"
    run predict "$TMP/img.png" --model "$TMP/m.pth" --arch maskrcnn_resnet50_fpn_v2
    want_input_error "$TMP/m.pth" "expected"
    end

    begin "convert: the checkpoint to safetensors, which predicts the same"
    run convert "$TMP/m.pth" "$TMP/m.safetensors"
    want_rc 0
    # shellcheck disable=SC2086
    run predict "$TMP/img.png" --model "$TMP/m.safetensors" $SMALL --out "$TMP/res2.json"
    want_rc 0
    cmp -s "$TMP/res.json" "$TMP/res2.json" || bad "results differ between .pth and .safetensors"
    end

    begin "dump: named intermediate tensors as safetensors"
    # shellcheck disable=SC2086
    run dump "$TMP/img.png" --model "$TMP/m.pth" $SMALL --out "$TMP/dump.safetensors" \
        --only fpn.p2,rpn.proposals,mask.logits
    want_rc 0
    want_has "$OUT" "wrote 3 tensors" "stdout"
    end
else
    skip "predict with a model: torchvision is not installed (apt-get install python3-torchvision)"
fi

# ---- synthetic data and training ------------------------------------------------------
mkdir -p "$TMP/t"
begin "synth: a synthetic nuclei dataset (COCO JSON + PNG images)"
run synth --out "$TMP/syn" --count 4 --size 64x64 --seed 3 --min-nuclei 3 --max-nuclei 6
want_rc 0
want_has "$OUT" "4 images" "stdout"
[ -s "$TMP/syn/synth.json" ] || bad "synth.json missing"
[ -s "$TMP/syn/images/synth_0003.png" ] || bad "images/synth_0003.png missing"
no_tmp_left "$TMP/syn"
end

TRAIN_DATA="--train-json $TMP/syn/synth.json --train-images $TMP/syn"
TINY="--width 8 --fpn 16 --rep 32 --mask-ch 16 --size 64 --threads 2 --batch 2 --epochs 2 --seed 5"
begin "train: two epochs with validation keep the best model and a checkpoint"
# shellcheck disable=SC2086
run train $TRAIN_DATA --val-json "$TMP/syn/synth.json" --val-images "$TMP/syn" $TINY \
    --out "$TMP/t/a.safetensors"
want_rc 0
want_has "$ERR" "val segm AP" "stderr"
want_has "$ERR" "done: best val segm AP" "stderr"
[ -s "$TMP/t/a.safetensors" ] || bad "no model written"
[ -s "$TMP/t/a.safetensors.ckpt.safetensors" ] || bad "no checkpoint written"
no_tmp_left "$TMP/t"
end

begin "train: a run stopped after one step and resumed is the very same run"
# shellcheck disable=SC2086
run train $TRAIN_DATA --val-json "$TMP/syn/synth.json" --val-images "$TMP/syn" $TINY \
    --out "$TMP/t/b.safetensors" --max-steps 1
want_rc 0
want_has "$ERR" "continue with --resume" "stderr"
# shellcheck disable=SC2086
run train $TRAIN_DATA --val-json "$TMP/syn/synth.json" --val-images "$TMP/syn" $TINY \
    --out "$TMP/t/b.safetensors" --resume "$TMP/t/b.safetensors.ckpt.safetensors"
want_rc 0
want_has "$ERR" "resuming at epoch 1 step 2" "stderr"
cmp -s "$TMP/t/a.safetensors.ckpt.safetensors" "$TMP/t/b.safetensors.ckpt.safetensors" ||
    bad "the resumed run's checkpoint differs from the uninterrupted run's"
cmp -s "$TMP/t/a.safetensors" "$TMP/t/b.safetensors" ||
    bad "the resumed run's model differs from the uninterrupted run's"
end

begin "predict: the trained model runs; --viz-style masks draws masks only"
run predict "$TMP/syn/images/synth_0000.png" --model "$TMP/t/a.safetensors" \
    --out "$TMP/t/res.json" --viz "$TMP/t/masks.png" --viz-style masks --viz-thresh 0
want_rc 0
[ -s "$TMP/t/res.json" ] || bad "no results written"
[ -s "$TMP/t/masks.png" ] || bad "no overlay written"
run predict "$TMP/syn/images/synth_0000.png" --model "$TMP/t/a.safetensors" --viz-style nope
want_usage_error "--viz-style"
end

begin "train --epochs 0: a model from a checkpoint, validated, no training"
# shellcheck disable=SC2086
run train $TRAIN_DATA --val-json "$TMP/syn/synth.json" --val-images "$TMP/syn" --size 64 \
    --threads 2 --epochs 0 --init "$TMP/t/a.safetensors.ckpt.safetensors" --out "$TMP/t/e.safetensors"
want_rc 0
want_has "$ERR" "epoch 0: val segm AP" "stderr"
[ -s "$TMP/t/e.safetensors" ] || bad "no model written"
grep -a -q '"iseg.bn_stats":"image"' "$TMP/t/e.safetensors" ||
    bad "the model does not record iseg.bn_stats image"
run train $TRAIN_DATA --epochs 0 --out "$TMP/t/x.safetensors"
want_usage_error "--epochs 0"
end

begin "predict --bn-stats: a trained model normalises per image by default; running differs"
run predict "$TMP/syn/images/synth_0000.png" --model "$TMP/t/a.safetensors" --out "$TMP/t/bn1.json"
want_rc 0
run predict "$TMP/syn/images/synth_0000.png" --model "$TMP/t/a.safetensors" --bn-stats image \
    --out "$TMP/t/bn2.json"
want_rc 0
cmp -s "$TMP/t/bn1.json" "$TMP/t/bn2.json" || bad "--bn-stats image differs from the file's default"
run predict "$TMP/syn/images/synth_0000.png" --model "$TMP/t/a.safetensors" --bn-stats running \
    --out "$TMP/t/bn3.json"
want_rc 0
cmp -s "$TMP/t/bn1.json" "$TMP/t/bn3.json" && bad "--bn-stats running gave the per-image results"
run predict "$TMP/syn/images/synth_0000.png" --model "$TMP/t/a.safetensors" --bn-stats batch
want_usage_error "--bn-stats"
end

begin "convert: keeps a safetensors file's metadata, and --meta sets entries"
run convert "$TMP/t/a.safetensors" "$TMP/t/c.safetensors" --meta iseg.detections_per_img=2 \
    --meta iseg.score_thresh=0
want_rc 0
run predict "$TMP/syn/images/synth_0000.png" --model "$TMP/t/c.safetensors" --out "$TMP/t/res2.json"
want_rc 0
N_DET=$(grep -c '"image_id"' "$TMP/t/res2.json")
[ "$N_DET" = 2 ] || bad "expected 2 detections (iseg.detections_per_img=2, score_thresh 0), got $N_DET"
grep -q '"category_id": 1' "$TMP/t/res2.json" || bad "category ids (iseg.category_ids) lost"
run convert "$TMP/t/a.safetensors" "$TMP/t/d.safetensors" --meta novalue
want_usage_error "KEY=VALUE"
end

begin "train: a dataset listing a missing image is refused, naming it"
printf '{"images": [{"id": 1, "file_name": "nope.png", "width": 8, "height": 8}], "annotations": [], "categories": [{"id": 1, "name": "a"}]}' >"$TMP/t/bad.json"
run train --train-json "$TMP/t/bad.json" --train-images "$TMP/t" --out "$TMP/t/x.safetensors"
want_usage_error "nope.png"
[ ! -e "$TMP/t/x.safetensors" ] || bad "a model was written"
end

begin "train: bad options"
run train --train-json "$TMP/syn/synth.json" --train-images "$TMP/syn" --out "$TMP/t/x.safetensors" --mask-loss nope
want_usage_error "--mask-loss"
run train --train-json "$TMP/syn/synth.json" --out "$TMP/t/x.safetensors"
want_rc 2
end

# ---- the default model ---------------------------------------------------------------
begin "demo: the default nuclei model segments the project's sample image (AP >= 0.7)"
run predict "$SRC/examples/data/nuclei_sample.png" --model "$SRC/models/nuclei_compact.safetensors" \
    --viz "$TMP/t/demo.png" --viz-style masks --out "$TMP/t/demo.json"
want_rc 0
[ -s "$TMP/t/demo.png" ] || bad "no overlay written"
# the sample's ground truth is iseg synth --count 1 --seed 7 --size 320x256 (40 nuclei)
run eval --gt "$SRC/examples/data/nuclei_sample.json" --dt "$TMP/t/demo.json" --json -
want_rc 0
DEMO_AP=$(tr -d '\n' <"$OUT" | sed -n 's/.*"stats": \[\([-0-9.e]*\),.*/\1/p')
awk -v ap="${DEMO_AP:-0}" 'BEGIN { exit !(ap >= 0.7) }' || bad "segm AP on the sample: '$DEMO_AP' (< 0.7)"
end

begin "predict --precision bf16|int8: the default model keeps its accuracy on the sample (AP >= 0.7)"
for P in bf16 int8; do
    run predict "$SRC/examples/data/nuclei_sample.png" --model "$SRC/models/nuclei_compact.safetensors" \
        --precision $P --out "$TMP/t/demo_$P.json"
    want_rc 0
    run eval --gt "$SRC/examples/data/nuclei_sample.json" --dt "$TMP/t/demo_$P.json" --json -
    want_rc 0
    P_AP=$(tr -d '\n' <"$OUT" | sed -n 's/.*"stats": \[\([-0-9.e]*\),.*/\1/p')
    awk -v ap="${P_AP:-0}" 'BEGIN { exit !(ap >= 0.7) }' || bad "$P: segm AP on the sample: '$P_AP' (< 0.7)"
done
cmp -s "$TMP/t/demo.json" "$TMP/t/demo_int8.json" && bad "--precision int8 gave the fp32 results"
run predict "$SRC/examples/data/nuclei_sample.png" --model "$SRC/models/nuclei_compact.safetensors" \
    --precision fp16
want_usage_error "--precision"
end

# ---- verdict -------------------------------------------------------------------------
echo "cli: $PASS passed, $FAIL failed, $SKIP skipped"
if [ "$FAIL" -ne 0 ]; then
    printf 'failed checks:\n%s' "$FAILED"
    exit 1
fi
exit 0
