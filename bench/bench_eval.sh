#!/bin/sh
# bench_eval.sh - end-to-end COCO evaluation benchmark (issue: >= 20x pycocotools).
#
# usage: sh bench/bench_eval.sh [path/to/iseg] [threads]
# Makes the benchmark inputs with ../shared/tools/gen_coco.py (Debian python3-numpy and
# python3-opencv) into bench/out/ once, then times `iseg eval` as a whole process (load +
# evaluate + accumulate + summarize) and reports wall time, peak RSS, detections per second and
# the ratio to the reference evaluator. pycocotools is not packaged for Debian, so the
# reference's times are the ones measured on this machine and quoted in the issue (2 cores):
#   5000-image set (seed 2):          load 1.3 s + evaluate/accumulate 16.9 s = 18.2 s
#   dense set (--fp-per-image 60):    47 s in all
#   faster-coco-eval (C++):           5.7 s and 14 s
set -eu
ISEG=${1:-build/iseg}
THREADS=${2:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${ISEG_SHARED_DIR:-$HERE/../../shared}
OUT=$HERE/out
GEN=$SHARED/tools/gen_coco.py
mkdir -p "$OUT"
if [ ! -f "$OUT/c5000_res.json" ] || [ ! -f "$OUT/c5000dense_res.json" ]; then
    if [ ! -f "$GEN" ]; then echo "bench: $GEN not found (set ISEG_SHARED_DIR)"; exit 2; fi
    echo "bench: generating inputs (a few minutes, once)..."
    python3 "$GEN" --images 5000 --cats 80 --seed 2 --out "$OUT/c5000"
    python3 "$GEN" --images 5000 --cats 80 --seed 3 --fp-per-image 60 --out "$OUT/c5000dense"
fi

run() { # name gt dt iou_type ref_seconds faster_coco_eval_seconds
    name=$1 gt=$2 dt=$3 it=$4 ref=$5 fce=$6
    best=""
    for rep in 1 2 3; do
        /usr/bin/time -f "%e %M" -o "$OUT/time.txt" "$ISEG" eval --gt "$gt" --dt "$dt" \
            --iou-type "$it" --threads "$THREADS" --json "$OUT/$name-$it.json" > /dev/null
        t=$(cut -d' ' -f1 "$OUT/time.txt"); rss=$(cut -d' ' -f2 "$OUT/time.txt")
        if [ -z "$best" ] || [ "$(awk "BEGIN{print ($t < $best)}")" = 1 ]; then best=$t; best_rss=$rss; fi
    done
    inbytes=$(($(stat -L -c %s "$gt") + $(stat -L -c %s "$dt")))
    ndt=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" "$dt")
    stages=$(python3 -c "import json,sys; t=json.load(open(sys.argv[1]))['timings_s']; print(' '.join('%s=%.2f'%(k,t[k]) for k in ('load','prepare','evaluate','accumulate')))" "$OUT/$name-$it.json")
    printf '%-11s %-8s %6.2f s  rss %5d MB (%.2fx inputs)  %8.0f dets/s  %s' "$name" "$it" "$best" \
        $((best_rss / 1024)) "$(awk "BEGIN{print $best_rss * 1024 / $inbytes}")" \
        "$(awk "BEGIN{print $ndt / $best}")" "$stages"
    if [ "$ref" != "-" ]; then
        printf '  | vs pycocotools %.1fx, vs faster-coco-eval %.1fx' "$(awk "BEGIN{print $ref / $best}")" \
            "$(awk "BEGIN{print $fce / $best}")"
    fi
    printf '\n'
}

echo "iseg eval, $THREADS threads, best of 3 (whole process)"
run c5000      "$OUT/c5000_gt.json"      "$OUT/c5000_res.json"      segm 18.2 5.7
run c5000      "$OUT/c5000_gt.json"      "$OUT/c5000_res.json"      bbox - -
run c5000      "$OUT/c5000_gt.json"      "$OUT/c5000_res.json"      boundary - -
run c5000dense "$OUT/c5000dense_gt.json" "$OUT/c5000dense_res.json" segm 47 14
run c5000dense "$OUT/c5000dense_gt.json" "$OUT/c5000dense_res.json" bbox - -
