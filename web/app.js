// The page: picks and decodes the picture, picks the scale, hands the pixels to the
// worker, shows the result.
//
// State for people and tests: #status carries data-state = idle | loading | running |
// done | error, and the result is drawn at full resolution into canvas#result.
// URL options (for testing and benchmarks): ?backend=auto|webgpu|wasm, ?threads=N,
// ?tile=N (output tile side, results do not depend on it).

import {decodeImage} from './decode.js';
import {estimateQuality, levelForQuality, quantTables} from './jpeg.js';
import {outputSize} from './pipeline.js';
import {encodePng} from './png.js';
import {UserError} from './errors.js';

const SAMPLE_URL = 'samples/coffee.png';
const COLOUR_SPACE = 'bt601-studio-luma/255';   // what sr/export.py writes
// Larger results are refused with a message rather than risking the tab: 4000x3000 at
// x2 is 48 Mpix; about 12 bytes per output pixel are held at once (RGBA in the worker
// and on the canvas, float luma).
const MAX_OUTPUT_PIXELS = 64e6;
const MAX_OUTPUT_SIDE = 16384;     // canvas limit of common browsers

const $ = (id) => document.getElementById(id);
const countOf = (n, noun) => `${n} ${noun}${n === 1 ? '' : 's'}`;   // '1 tile', '2 tiles'
const params = new URLSearchParams(location.search);
const worker = new Worker(new URL('./worker.js', import.meta.url), {type: 'module'});

let models = [];          // [{file, scale, level, radius, architecture}] by scale, level
let levels = [[0, 0]];    // models.json's [[JPEG level, lowest quality], ...]
let x1Highest = 100;      // models.json's x1_highest_quality: x1 leaves better JPEGs alone
let current = null;       // the job in progress: {id, file, name, scale, passes, sent...}
let lastPicture = null;   // {file, name}: re-run it when the scale or ensemble changes
let lastResult = null;    // the result shown: its pixels and what the download needs
let nextId = 1;
let ready = false;

function setStatus(state, text) {
  const status = $('status');
  status.dataset.state = state;
  status.textContent = text;
  $('cancel').hidden = $('progress').hidden = state !== 'running';
}

// ---- models and runtime ----

// models.json -> models: each entry with the scale, JPEG level, radius and colour
// space the pipeline needs (sr/export.py copies them from the ONNX files' metadata),
// and levels, the quality bounds of the JPEG levels (sr.jpeg.LEVELS).
async function loadModels() {
  const response = await fetch('models.json', {cache: 'no-cache'});
  if (!response.ok) throw new Error(`models.json: HTTP ${response.status}`);
  const index = await response.json();
  if (!index.models || !index.models.length) throw new Error('models.json lists no model');
  levels = index.levels || levels;   // an index written before levels: every model clean
  x1Highest = index.x1_highest_quality ?? x1Highest;
  models = index.models.map(({file, scale, level = 0, radius, colour_space: space,
                              architecture}) => {
    if (!Number.isInteger(scale) || scale < 1 || !Number.isInteger(radius) || radius < 0) {
      throw new Error(`models.json: no valid scale and radius for ${file}; ` +
                      `rewrite it with 'python main.py export-onnx'`);
    }
    if (space !== COLOUR_SPACE) {
      throw new Error(`models.json: ${file}'s colour space '${space}' is not ${COLOUR_SPACE}`);
    }
    return {file, scale, level, radius, architecture: architecture || '?'};
  }).sort((a, b) => a.scale - b.scale || a.level - b.level);
  return models.find((m) => m.scale === 2 && !m.level) || models[0];   // the one offered first
}

// note: why WebGPU was not used (null on WebGPU)
function describeRuntime({backend, threads, note, isolated}) {
  if (backend === 'webgpu') return 'Backend: WebGPU';
  const parts = ['Backend: wasm (CPU)', countOf(threads, 'thread')];
  if (!isolated) {
    parts.push('one thread because the page is not cross-origin isolated ' +
               '(serve it with web/serve.py for threads)');
  }
  if (note) parts.push(`WebGPU not used: ${note}`);
  return parts.join(' · ');
}

// The models a JPEG level (0: clean) runs for scale, in order, as `main.py upscale`
// routes them (undefined if none): the level's model of the scale (x1: an x1 model); else
// its smallest from x2, then the route of the rest. Level 4 (sr/jpeg.py TWO_PASSES)
// without a route: level 3's x1 model, then level 3's route.
function route(scale, level) {
  const own = models.filter((m) => m.level === level && (scale > 1 || m.scale === 1));
  const [exact, grow] = [own.find((m) => m.scale === scale), own.find((m) => m.scale >= 2)];
  const rest = () => (scale > grow.scale ? route(scale / grow.scale, level) : []);
  const passes = exact ? [exact] : grow && [grow, ...rest()];   // models are by scale
  if (passes || level !== 4) return passes;
  const [first, then] = [models.find((m) => m.scale === 1 && m.level === 3), route(scale, 3)];
  return then && (first ? [first, ...then] : then);
}

const reach = (passes) => passes.reduce((s, m) => s * m.scale, 1);   // the last pass's scale

// What the passes run, as `main.py upscale` says it: 'x2 model for JPEG level 2, twice',
// 'JPEG level 4: the x1 model for level 3, then the x2 one twice', '..., shrunk to x3'.
function describeRoute(passes, level, scale) {
  const runs = [];   // [model, passes in a row]
  for (const model of passes) {
    if (runs.at(-1)?.[0] === model) runs.at(-1)[1]++;
    else runs.push([model, 1]);
  }
  const often = (times) => (times === 2 ? 'twice' : `${times} times`);
  const [[head, times], ...later] = runs;
  const parts = [head.scale === 1 && head.level !== level   // level 4's first pass
    ? `JPEG level ${level}: the x1 model for level ${head.level}`
    : head.level ? `x${head.scale} model for JPEG level ${head.level}`
      : `x${head.scale} clean model${level ? ` (none for JPEG level ${level})` : ''}`];
  if (times > 1) parts.push(often(times));
  for (const [m, n] of later) parts.push(`then the x${m.scale} one${n > 1 ? ` ${often(n)}` : ''}`);
  if (reach(passes) > scale) parts.push(`shrunk to x${scale}`);
  return parts.join(', ');
}

// The passes for a picture, as `main.py upscale` chooses them: the route of the JPEG
// level of the artifacts menu, or under auto the level of the file's estimated
// quality, falling back to the clean route where that level has none.
// -> {passes: [model, ...], note: what was chosen and why}; UserError where no route.
async function chooseModel(file, name, scale) {
  const denoise = $('denoise').value;
  let level = denoise === 'off' ? 0 : Number(denoise);
  let said = denoise === 'off' ? 'JPEG artifacts off' : `JPEG level ${level} chosen`;
  if (denoise === 'auto') {
    const quality = estimateQuality(quantTables(new Uint8Array(await file.arrayBuffer())));
    level = levelForQuality(quality, levels, scale, x1Highest);
    said = quality === null ? 'not a JPEG' : `JPEG quality ≈ ${quality}`;
  }
  if (scale === 1 && !level) {
    throw new UserError(`${name}: ${said}, so ${said === 'not a JPEG' ? 'no' : 'too few'} ` +
                        `JPEG artifacts to remove at x1; ` +
                        `pick a larger scale (or JPEG artifacts 1-4 if it once was a JPEG)`);
  }
  const passes = route(scale, level) || (denoise === 'auto' && scale > 1 && route(scale, 0));
  if (!passes) {
    const wanted = level ? `model for JPEG level ${level}` : 'clean model';
    throw new UserError(`no x${scale} ${wanted} on this page (web/models.json)`);
  }
  return {passes, note: `${said} → ${describeRoute(passes, level, scale)}`};
}

function onReady(message) {
  $('runtime').textContent = describeRuntime(message);
  $('scale').disabled = false;
  ready = true;
  if (lastPicture) start(lastPicture);   // picked while loading
  else setStatus('idle', 'Ready: pick or drop a picture, or try the sample.');
}

// ---- jobs ----

// Refuses a picture of width x height whose result at scale is too large for the page.
function checkSize(width, height, scale) {
  const size = outputSize(width, height, scale);
  const pixels = size.width * size.height;
  if (pixels > MAX_OUTPUT_PIXELS || Math.max(size.width, size.height) > MAX_OUTPUT_SIDE) {
    throw new UserError(`${width}x${height} at x${scale} would be ${size.width}x${size.height} ` +
      `(${(pixels / 1e6).toFixed(0)} Mpix); this page handles at most ` +
      `${MAX_OUTPUT_PIXELS / 1e6} Mpix and ${MAX_OUTPUT_SIDE} px a side: ` +
      `pick a smaller scale or picture, or use 'python main.py upscale'`);
  }
}

// Decodes the picture here (see png.js), then hands its pixels to the worker. A job
// replaced or cancelled while it decodes is dropped when decoding ends.
async function start({file, name}) {
  lastPicture = {file, name};
  if (!ready) {   // runs when the worker is ready (unless loading failed: that error stays)
    if ($('status').dataset.state !== 'error') {
      setStatus('loading', `Loading the model… ${name} will be upscaled when it is ready.`);
    }
    return;
  }
  if (current?.sent) worker.postMessage({type: 'cancel', id: current.id});
  const job = {id: nextId++, file, name, scale: Number($('scale').value), passes: null,
               ensemble: $('ensemble').checked, sent: false, started: performance.now()};
  current = job;
  // the last result is not this job's: never shown or downloaded under its name
  lastResult = null;
  $('output').hidden = true;
  $('choice').textContent = '';
  $('progress').removeAttribute('value');   // indeterminate while decoding
  setStatus('running', `Decoding ${name}…`);
  try {
    const {passes, note} = await chooseModel(file, name, job.scale);
    if (current !== job) return;
    job.passes = passes;
    $('choice').textContent = note;
    const image = await decodeImage(file, name, (w, h) => checkSize(w, h, reach(passes)));
    if (current !== job) return;
    job.image = {...image, pixels: null};   // what the download needs, without the pixels
    job.decodeMs = performance.now() - job.started;
    // ?tile=N: a whole number of pixels; anything else means the worker's default
    const tile = Math.max(0, Math.floor(Number(params.get('tile')) || 0));
    worker.postMessage({type: 'upscale', id: job.id, image, passes, scale: job.scale, tile,
                        ensemble: job.ensemble}, [image.pixels.buffer]);   // moved, not copied
    job.sent = true;
  } catch (e) {
    if (current === job) {
      current = null;
      setStatus('error', `Error: ${e.message}`);
    }
  }
}

// Cancel: a job in the worker stops there and says so; one still decoding here is
// dropped when decoding ends.
function cancel() {
  if (!current) return;
  if (current.sent) return worker.postMessage({type: 'cancel', id: current.id});
  setStatus('idle', `Cancelled ${current.name}.`);
  current = null;
}

function onProgress({phase, done, total, passesPerTile}) {
  const bar = $('progress');
  if (total) {
    bar.max = total;
    bar.value = done;
    const tiles = total / passesPerTile;
    $('status').textContent = passesPerTile === 1
      ? `Refining ${current.name}: tile ${done} of ${tiles}`
      : `Refining ${current.name}: pass ${done} of ${total} (x8 self-ensemble, ` +
        `${countOf(tiles, 'tile')})`;
  } else {
    bar.removeAttribute('value');   // indeterminate while interpolating
    $('status').textContent = `${phase[0].toUpperCase()}${phase.slice(1)} ${current.name}…`;
  }
}

const seconds = (ms) => `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;

// message: the worker's result for job. A new job started while this one awaits (a
// picture picked, the scale changed) replaces or clears lastResult: then this result
// is dropped rather than shown over the new job.
async function showResult(message, job) {
  const {passes, image, scale} = job;
  const {width, height, pixels, backend, threads, tiles} = message;
  // what the download needs: the decoded picture's hasAlpha, grey and iccProfile, ...
  const result = {...image, pixels, width, height, name: job.name, scale, ensemble: job.ensemble};
  lastResult = result;
  // totalMs: from the pick to the worker's result (decoding, interpolation, network)
  const timings = {...message.timings, decodeMs: job.decodeMs,
                   totalMs: performance.now() - job.started};
  drawPixels($('result'), pixels, width, height);
  if (!await showBefore(result, message.before, job.file)) return;
  $('output').hidden = false;
  const how = backend === 'webgpu' ? 'WebGPU' : `wasm, ${countOf(threads, 'thread')}`;
  $('details').textContent =
    `${image.width}×${image.height} → ${width}×${height} (x${scale}, ` +
    `${[...new Set(passes.map((m) => `${m.architecture} model ${m.file}`))].join(' and ')}) ` +
    `in ${seconds(timings.totalMs)}: network ` +
    `${seconds(timings.networkMs)} over ${countOf(tiles, 'tile')} ` +
    `${job.ensemble ? '(x8 self-ensemble) ' : ''}on ${how}.`;
  // Machine-readable timings (milliseconds) for benchmarks: data-total-ms (the job),
  // data-network-ms, ..., data-shown-ms (from the pick to the result on screen).
  for (const [key, ms] of Object.entries({...timings, shownMs: performance.now() - job.started})) {
    $('details').dataset[key] = ms.toFixed(1);
  }
  setStatus('done', `Done in ${seconds(timings.totalMs)} (${how}).`);
}

// RGBA pixels (height, width, 4) -> the canvas, resized to them. The worker's buffer is
// shared with the ImageData, not copied.
function drawPixels(canvas, pixels, width, height) {
  canvas.width = width;
  canvas.height = height;
  const data = new Uint8ClampedArray(pixels.buffer, pixels.byteOffset, pixels.length);
  canvas.getContext('2d').putImageData(new ImageData(data, width, height), 0, 0);
}

// The "before" side of the slider: the bicubic picture at full size when the worker
// sent it, else the original picture stretched by the browser (said in the label).
// -> false, drawing nothing, when result is no longer the latest once the browser
// has decoded the picture.
async function showBefore(result, before, file) {
  const canvas = $('before');
  if (before) {
    drawPixels(canvas, before, result.width, result.height);
    $('before-label').textContent = 'Before: bicubic';
    return true;
  }
  const bitmap = await createImageBitmap(file).catch(() => null);   // null: "not shown" below
  if (lastResult !== result) {
    bitmap?.close();
    return false;
  }
  try {
    if (!bitmap) throw new Error('the browser cannot decode the picture');
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    canvas.getContext('2d').drawImage(bitmap, 0, 0);
    $('before-label').textContent = 'Before: the original, enlarged by the browser';
  } catch {
    canvas.width = canvas.height = 1;
    $('before-label').textContent = 'Before: not shown';
  } finally {
    bitmap?.close();
  }
  return true;
}

function onWorkerMessage({data}) {
  if (data.type === 'ready') return onReady(data);
  if (data.id === null) return setStatus('error', `Error: ${data.message}`);   // init failed
  if (!current || data.id !== current.id) return;   // a job that was replaced
  if (data.type === 'progress') return onProgress(data);
  const finished = current;
  current = null;
  if (data.type === 'result') showResult(data, finished);
  else if (data.type === 'cancelled') setStatus('idle', `Cancelled ${finished.name}.`);
  else if (data.type === 'error') setStatus('error', `Error: ${data.message}`);
}

// ---- download ----

// fast-png encodes on this thread: a few seconds for the largest results.
function download() {
  if (!lastResult) return;
  const {pixels, width, height, hasAlpha, grey, scale, iccProfile, ensemble, name} = lastResult;
  const link = document.createElement('a');
  link.href = URL.createObjectURL(encodePng(pixels, width, height, hasAlpha, iccProfile, grey));
  const stem = name.replace(/(.)\.[^.]*$/, '$1');   // '.hidden.png' keeps '.hidden'
  link.download = `${stem}.x${scale}${ensemble ? '.ensemble' : ''}.png`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}

// ---- wiring ----

function pickFiles(files) {
  const [file] = files;
  if (!file) return;
  start({file, name: file.name || 'picture'});
  if (files.length > 1 && ready) {
    $('status').textContent += ` (only the first of the ${files.length} files: ${file.name})`;
  }
}

async function pickSample() {
  const response = await fetch(SAMPLE_URL);
  if (!response.ok) return setStatus('error', `Error: ${SAMPLE_URL}: HTTP ${response.status}`);
  start({file: await response.blob(), name: 'coffee.png'});
}

function moveDivider() {
  const percent = Number($('slider').value);
  $('before').style.clipPath = `inset(0 ${100 - percent}% 0 0)`;
  $('divider').style.left = `${percent}%`;
}

function wire() {
  $('file').addEventListener('change', (e) => {
    pickFiles([...e.target.files]);
    e.target.value = '';   // so that choosing the same file again starts it again
  });
  $('sample').addEventListener('click', pickSample);
  for (const id of ['scale', 'denoise', 'ensemble']) {
    $(id).addEventListener('change', () => lastPicture && start(lastPicture));
  }
  $('cancel').addEventListener('click', cancel);
  $('download').addEventListener('click', download);
  $('slider').addEventListener('input', moveDivider);
  $('actual-size').addEventListener('change', (e) => {
    $('compare').classList.toggle('actual', e.target.checked);
  });
  document.addEventListener('dragover', (e) => {
    e.preventDefault();
    document.body.classList.add('dragging');
  });
  document.addEventListener('dragleave', () => document.body.classList.remove('dragging'));
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    document.body.classList.remove('dragging');
    pickFiles([...e.dataTransfer.files]);
  });
  worker.addEventListener('message', onWorkerMessage);
  worker.addEventListener('error',
                          (e) => setStatus('error', `Error: the worker failed (${e.message})`));
}

async function main() {
  wire();
  moveDivider();
  try {
    const first = await loadModels();
    // x1 (JPEG artifacts only), x1.5, x2, ... up to the largest model's scale
    $('scale').replaceChildren(...Array.from({length: 2 * models.at(-1).scale - 1}, (_, i) =>
      new Option(i ? `x${1 + i / 2}` : 'x1 (JPEG artifacts only)', 1 + i / 2)));
    $('scale').value = first.scale;
    worker.postMessage({type: 'init', model: first.file, backend: params.get('backend') || 'auto',
                        threads: Number(params.get('threads')) || 0});
  } catch (e) {
    setStatus('error', `Error: ${e.message}`);
  }
}

main();
