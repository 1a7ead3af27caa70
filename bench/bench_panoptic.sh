#!/bin/sh
# bench_panoptic.sh - end-to-end Panoptic Quality benchmark (issue: >= 10x panopticapi).
#
# usage: sh bench/bench_panoptic.sh [path/to/iseg] [threads] [data dir]
# Makes 500 synthetic COCO panoptic images with ../shared/tools/gen_panoptic.py --images 500
# --seed 1 (Debian python3-numpy, python3-opencv and python3-pil) into the data dir once
# (default /work/benchdata, outside the repository: about 10 MB), then times
# `iseg panoptic eval` as a whole process, with and without --boundary, and reports wall time
# (best of 3), peak RSS and the ratio to the reference. panopticapi and boundary-iou-api are not
# packaged for Debian, so the reference's times are the ones measured on this machine and
# quoted in the issue (2 worker processes): PQ 6.2 s, Boundary PQ 12.8 s.
set -eu
ISEG=${1:-build/iseg}
THREADS=${2:-2}
DATA=${3:-/work/benchdata}
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${ISEG_SHARED_DIR:-$HERE/../../shared}
GEN=$SHARED/tools/gen_panoptic.py
PY=${PYTHON:-/usr/bin/python3}
BASE=$DATA/pan500
mkdir -p "$DATA"
if [ ! -f "${BASE}_pred.json" ]; then
    if [ ! -f "$GEN" ]; then echo "bench: $GEN not found (set ISEG_SHARED_DIR)"; exit 2; fi
    echo "bench: generating 500 panoptic images into $DATA (about a minute, once)..."
    "$PY" "$GEN" --images 500 --seed 1 --out "$BASE"
fi
TIMES=$(mktemp "${TMPDIR:-/tmp}/bench_panoptic.XXXXXX")
trap 'rm -f "$TIMES"' EXIT

run() { # name ref_seconds extra-options...
    name=$1 ref=$2
    shift 2
    best=""
    for rep in 1 2 3; do
        /usr/bin/time -f "%e %M" -o "$TIMES" "$ISEG" panoptic eval --gt-json "${BASE}_gt.json" \
            --gt-dir "${BASE}_gt" --pred-json "${BASE}_pred.json" --pred-dir "${BASE}_pred" \
            --threads "$THREADS" "$@" > /dev/null
        t=$(cut -d' ' -f1 "$TIMES"); rss=$(cut -d' ' -f2 "$TIMES")
        if [ -z "$best" ] || [ "$(awk "BEGIN{print ($t < $best)}")" = 1 ]; then
            best=$t
            best_rss=$rss
        fi
    done
    printf '%-12s %6.2f s  rss %4d MB  %6.0f images/s  | reference %.1f s: %.1fx\n' "$name" \
        "$best" $((best_rss / 1024)) "$(awk "BEGIN{print 500 / $best}")" "$ref" \
        "$(awk "BEGIN{print $ref / $best}")"
}

echo "iseg panoptic eval, 500 images (gen_panoptic.py --seed 1), $THREADS threads, best of 3"
run "PQ" 6.2
run "Boundary PQ" 12.8 --boundary
