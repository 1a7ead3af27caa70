#!/usr/bin/env node
// ONNX Runtime peer of bench/bench_maskrcnn.py: runs a Mask R-CNN exported by torch.onnx.export
// (one input: a float32 CHW image in [0,1]; outputs boxes, labels, scores, masks) with
// onnxruntime-node on the CPU, intra-op threads = N, and prints one JSON object on stdout:
//
//   node run.js --model m.onnx --input x.f32 --shape 3,480,640 [--threads N] [--repeat R]
//               [--warmup W] [--profile [--profile-repeat P]] [--dets K]
//
//   {"threads", "load_ms", "runs_ms": [...], "median_ms", "n_det", "scores": [top K],
//    "boxes": [top K, x1 y1 x2 y2], "labels": [top K], "stages": {stage: ms} (with --profile)}
//
// --input is the raw little-endian float32 tensor (what numpy's tofile writes). Timing: W warm-up
// runs, then R timed runs of session.run(); median_ms is their median. With --profile a second
// session with ORT's profiler on runs W + P more times (P defaults to R); its per-node kernel
// times are grouped into stages by the exporter's scoped node names (/backbone/body/...,
// /backbone/fpn/..., /rpn/..., /roi_heads/..., /transform/...; see stageOf) and the medians of
// the per-run sums are printed, with "model_run" = the profiler's whole-run time.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const a = { threads: 1, repeat: 5, warmup: 1, profile: false, dets: 10 };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${k} needs a value`);
      return argv[++i];
    };
    if (k === '--model') a.model = v();
    else if (k === '--input') a.input = v();
    else if (k === '--shape') a.shape = v().split(',').map(Number);
    else if (k === '--threads') a.threads = parseInt(v(), 10);
    else if (k === '--repeat') a.repeat = parseInt(v(), 10);
    else if (k === '--warmup') a.warmup = parseInt(v(), 10);
    else if (k === '--dets') a.dets = parseInt(v(), 10);
    else if (k === '--profile') a.profile = true;
    else if (k === '--profile-repeat') a.profileRepeat = parseInt(v(), 10);
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.model || !a.input || !a.shape) {
    throw new Error('--model, --input and --shape are required');
  }
  if (a.profileRepeat === undefined) a.profileRepeat = a.repeat;
  return a;
}

const median = (xs) => {
  const s = [...xs].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// Stage of an exported node, from its scoped name (torch >= 1.13 names nodes after the module
// path, e.g. "/backbone/body/layer1/layer1.0/conv1/Conv"; ORT's fusions prefix "fused "). Nodes
// with no module scope go with the stage of the node run before them: ORT's layout reorders
// always, root-level glue and scripted code (transform.postprocess, its Loop that pastes the
// masks) too, except that after the mask head they are "paste". Glue directly under
// /roi_heads/ (postprocess_detections, maskrcnn_inference) goes with the box or mask head that
// it follows.
function stageOf(rawName, prev) {
  const name = rawName.replace(/^fused /, '');
  const rules = [
    ['transform', /^\/transform\//],
    ['backbone', /^\/backbone\/body\//],
    ['fpn', /^\/backbone\/fpn\//],
    ['rpn_head', /^\/rpn\/head\//],
    ['rpn_proposals', /^\/rpn\//],
    ['box_roi_align', /^\/roi_heads\/box_roi_pool\//],
    ['box_head', /^\/roi_heads\/(box_head|box_predictor)\//],
    ['mask_roi_align', /^\/roi_heads\/mask_roi_pool\//],
    ['mask_head', /^\/roi_heads\/(mask_head|mask_predictor)\//],
  ];
  for (const [stage, re] of rules) if (re.test(name)) return stage;
  if (/^\/roi_heads\//.test(name)) {
    if (prev === 'paste') return 'paste';
    return prev.startsWith('mask') ? 'mask_head' : 'box_head';
  }
  if (/^Reorder/.test(name)) return prev || 'transform'; // ORT's NCHWc layout changes
  if (prev === 'mask_head' || prev === 'paste') return 'paste';
  return prev || 'transform';
}

async function profiled(a, feeds) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ort-prof-'));
  const prefix = path.join(dir, 'prof');
  const opts = sessionOptions(a, { enableProfiling: true, profileFilePrefix: prefix });
  const s = await ort.InferenceSession.create(a.model, opts);
  for (let i = 0; i < a.warmup; i++) await s.run(feeds);
  const walls = [];
  for (let i = 0; i < a.profileRepeat; i++) {
    const t0 = process.hrtime.bigint();
    await s.run(feeds);
    walls.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  s.endProfiling();
  await s.release();
  const json = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
  const file = json.length ? path.join(dir, json[0]) : null;
  if (!file) return { error: 'no profile file written' };
  const events = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.rmSync(dir, { recursive: true, force: true });
  // model_run events delimit runs; node events (cat "Node", name "<node>_kernel_time") fall
  // inside. Nodes of subgraphs (the Loop that pastes masks) run inside nested
  // SequentialExecutor::Execute events: their time is already in their Loop/If node, skip them.
  const byTs = (p, q) => p.ts - q.ts;
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort(byTs);
  const isExec = (e) => e.cat === 'Session' && e.name === 'SequentialExecutor::Execute';
  const execs = events.filter(isExec);
  const isNode = (e) => e.cat === 'Node' && e.name.endsWith('_kernel_time');
  const nodes = events.filter(isNode).sort(byTs);
  const within = (e, m) => e.ts >= m.ts && e.ts <= m.ts + m.dur;
  const per = runs.map((m) => {
    const ex = execs.filter((x) => within(x, m));
    const top = ex.reduce((p, q) => (q.dur > p.dur ? q : p), ex[0] || m);
    const nested = ex.filter((x) => x !== top);
    const acc = {};
    let prev = '';
    for (const e of nodes) {
      if (!within(e, m) || nested.some((x) => within(e, x))) continue;
      prev = stageOf(e.name.slice(0, -'_kernel_time'.length), prev);
      acc[prev] = (acc[prev] || 0) + e.dur / 1e3;
    }
    return acc;
  });
  const timed = per.slice(a.warmup);
  const stages = {};
  const names = new Set(timed.flatMap((p) => Object.keys(p)));
  for (const st of names) stages[st] = median(timed.map((p) => p[st] || 0));
  stages.model_run = median(runs.slice(a.warmup).map((m) => m.dur / 1e3));
  return { stages, profiled_median_ms: median(walls) };
}

function sessionOptions(a, extra) {
  return {
    executionProviders: ['cpu'],
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    ...extra,
  };
}

async function main() {
  const a = parseArgs(process.argv);
  const buf = fs.readFileSync(a.input);
  const n = a.shape.reduce((p, q) => p * q, 1);
  if (buf.length !== 4 * n) throw new Error(`${a.input}: ${buf.length} bytes, expected ${4 * n}`);
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));

  const tl = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(a.model, sessionOptions(a, {}));
  const loadMs = Number(process.hrtime.bigint() - tl) / 1e6;
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, a.shape) };

  let out;
  for (let i = 0; i < a.warmup; i++) out = await session.run(feeds);
  const runs = [];
  for (let i = 0; i < a.repeat; i++) {
    const t0 = process.hrtime.bigint();
    out = await session.run(feeds);
    runs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const [bName, lName, sName] = session.outputNames; // boxes, labels, scores, masks
  const scores = Array.from(out[sName].data);
  const k = Math.min(a.dets, scores.length);
  const res = {
    ort_version: require('onnxruntime-node/package.json').version,
    threads: a.threads,
    load_ms: loadMs,
    runs_ms: runs,
    median_ms: median(runs),
    n_det: scores.length,
    scores: scores.slice(0, k),
    labels: Array.from(out[lName].data.slice(0, k), Number),
    boxes: Array.from(out[bName].data.slice(0, 4 * k)),
  };
  await session.release();
  if (a.profile) Object.assign(res, await profiled(a, feeds));
  process.stdout.write(JSON.stringify(res) + '\n');
}

main().catch((e) => {
  process.stderr.write(`run.js: ${e.stack || e}\n`);
  process.exit(1);
});
