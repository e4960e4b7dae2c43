// The page: picks the picture and the scale, talks to the worker, shows the result.
//
// State for people and tests: #status carries data-state = idle | loading | running |
// done | error, and the result is drawn at full resolution into canvas#result.
// URL options (for testing and benchmarks): ?backend=auto|webgpu|wasm, ?threads=N,
// ?tile=N (output tile side, results do not depend on it), ?models=a.onnx,b.onnx
// (instead of models.json).

import {encodePng} from './png.js';

const SAMPLE_URL = 'samples/coffee.png';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const worker = new Worker(new URL('./worker.js', import.meta.url), {type: 'module'});

let models = [];          // [{url, meta}] from the worker, sorted by scale
let current = null;       // {id, file, name} of the job in progress
let lastPicture = null;   // {file, name}: re-run it when the scale or ensemble changes
let lastResult = null;    // worker result message (pixels kept for the download)
let nextId = 1;
let ready = false;

function setStatus(state, text) {
  const status = $('status');
  status.dataset.state = state;
  status.textContent = text;
  const busy = state === 'running';
  $('cancel').hidden = !busy;
  $('progress').hidden = !busy;
}

// ---- models and runtime ----

async function modelUrls() {
  if (params.get('models')) return params.get('models').split(',').filter(Boolean);
  const response = await fetch('models.json', {cache: 'no-cache'});
  if (!response.ok) throw new Error(`models.json: HTTP ${response.status}`);
  const index = await response.json();
  if (!index.models || !index.models.length) throw new Error('models.json lists no model');
  return index.models.map((m) => m.file);
}

function describeRuntime({backend, threads, note, isolated}) {
  const parts = [`Backend: ${backend === 'webgpu' ? 'WebGPU' : 'wasm (CPU)'}`];
  if (backend === 'wasm') {
    parts.push(`${threads} thread${threads === 1 ? '' : 's'}`);
    if (!isolated) {
      parts.push('one thread because the page is not cross-origin isolated ' +
                 '(serve it with web/serve.py for threads)');
    }
  }
  if (note && backend !== 'webgpu') parts.push(`WebGPU not used: ${note}`);
  return parts.join(' · ');
}

function fillScaleMenu() {
  const select = $('scale');
  select.replaceChildren(...models.map(({url, meta}) => {
    const option = new Option(`x${meta.scale} (${meta.architecture || '?'}, ${meta.file})`, url);
    return option;
  }));
  const x2 = models.find((m) => m.meta.scale === 2);
  if (x2) select.value = x2.url;
  select.disabled = false;
}

function onReady(message) {
  models = message.models.slice().sort((a, b) => a.meta.scale - b.meta.scale);
  fillScaleMenu();
  $('runtime').textContent = describeRuntime(message);
  ready = true;
  if (lastPicture) start(lastPicture.file, lastPicture.name);   // picked while loading
  else setStatus('idle', 'Ready: pick or drop a picture, or try the sample.');
}

// ---- jobs ----

function start(file, name) {
  lastPicture = {file, name};
  if (!ready) {   // runs when the worker is ready (unless loading failed: that error stays)
    if ($('status').dataset.state !== 'error') {
      setStatus('loading', `Loading the model… ${name} will be upscaled when it is ready.`);
    }
    return;
  }
  if (current) worker.postMessage({type: 'cancel', id: current.id});
  current = {id: nextId++, file, name, started: performance.now()};
  clearResult();   // the last result is not this job's: never shown or downloaded under its name
  // ?tile=N: a whole number of pixels; anything else means the worker's default
  const tile = Math.max(0, Math.floor(Number(params.get('tile')) || 0));
  $('progress').value = 0;
  setStatus('running', `Working on ${name}…`);
  worker.postMessage({type: 'upscale', id: current.id, file, name, model: $('scale').value, tile,
                      ensemble: $('ensemble').checked});
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
        `${tiles} tile${tiles === 1 ? '' : 's'})`;
  } else {
    bar.removeAttribute('value');   // indeterminate while decoding/interpolating
    $('status').textContent = `${phase[0].toUpperCase()}${phase.slice(1)} ${current.name}…`;
  }
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

function clearResult() {
  lastResult = null;
  $('output').hidden = true;
}

// message: the worker's result for the picture file. A new job started while this
// one awaits (a picture picked, the scale changed) replaces or clears lastResult:
// then this result is dropped rather than shown over the new job.
async function showResult(message, file, name, started) {
  const result = {...message, name};
  lastResult = result;
  const {width, height, pixels, timings, source} = message;
  const canvas = $('result');
  canvas.width = width;
  canvas.height = height;
  // The worker's RGBA buffer is shared with the ImageData, not copied.
  const data = new Uint8ClampedArray(pixels.buffer, pixels.byteOffset, pixels.length);
  canvas.getContext('2d').putImageData(new ImageData(data, width, height), 0, 0);
  if (!await showBefore(result, file)) return;
  $('output').hidden = false;
  const model = models.find((m) => m.meta.scale === message.scale).meta;
  const how = message.backend === 'webgpu' ? 'WebGPU'
    : `wasm, ${message.threads} thread${message.threads === 1 ? '' : 's'}`;
  $('details').textContent =
    `${source.width}×${source.height} → ${width}×${height} (x${message.scale}, ` +
    `${model.architecture} model ${model.file}) in ${seconds(timings.totalMs)}: network ` +
    `${seconds(timings.networkMs)} over ${message.tiles} tile${message.tiles === 1 ? '' : 's'} ` +
    `${message.ensemble ? '(x8 self-ensemble) ' : ''}on ${how}.`;
  // Machine-readable timings (milliseconds) for benchmarks: data-total-ms (the worker's
  // job), data-network-ms, ..., data-shown-ms (from the pick to the result on screen).
  const shownMs = performance.now() - started;
  for (const [key, ms] of Object.entries({...timings, shownMs})) {
    $('details').dataset[key] = ms.toFixed(1);
  }
  setStatus('done', `Done in ${seconds(timings.totalMs)} (${how}).`);
}

// The "before" side of the slider: the bicubic picture at full size when the worker
// sent it, else the original picture stretched by the browser (said in the label).
// -> false, drawing nothing, when result is no longer the latest once the browser
// has decoded the picture.
async function showBefore(result, file) {
  const {before, width, height} = result;
  const canvas = $('before');
  if (before) {
    canvas.width = width;
    canvas.height = height;
    const data = new Uint8ClampedArray(before.buffer, before.byteOffset, before.length);
    canvas.getContext('2d').putImageData(new ImageData(data, width, height), 0, 0);
    $('before-label').textContent = 'Before: bicubic';
    return true;
  }
  let bitmap = null;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    // drawn as "not shown" below
  }
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
  if (data.id === null || data.id === undefined) {
    if (data.type === 'error') setStatus('error', `Error: ${data.message}`);
    return;
  }
  if (!current || data.id !== current.id) return;   // a job that was replaced
  if (data.type === 'progress') return onProgress(data);
  const finished = current;
  current = null;
  if (data.type === 'result') showResult(data, finished.file, finished.name, finished.started);
  else if (data.type === 'cancelled') setStatus('idle', `Cancelled ${finished.name}.`);
  else if (data.type === 'error') setStatus('error', `Error: ${data.message}`);
}

// ---- download ----

async function download() {
  if (!lastResult) return;
  const button = $('download');
  button.disabled = true;
  try {
    const {pixels, width, height, hasAlpha, grey, scale, iccProfile, ensemble, name} = lastResult;
    const blob = await encodePng(pixels, width, height, hasAlpha, iccProfile, grey);
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    const stem = name.replace(/(.)\.[^.]*$/, '$1');   // '.hidden.png' keeps '.hidden'
    link.download = `${stem}.x${scale}${ensemble ? '.ensemble' : ''}.png`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  } finally {
    button.disabled = false;
  }
}

// ---- wiring ----

function pickFiles(files) {
  const [file] = files;
  if (!file) return;
  start(file, file.name || 'picture');
  if (files.length > 1 && ready) {
    $('status').textContent += ` (only the first of the ${files.length} files: ${file.name})`;
  }
}

async function pickSample() {
  const response = await fetch(SAMPLE_URL);
  if (!response.ok) return setStatus('error', `Error: ${SAMPLE_URL}: HTTP ${response.status}`);
  start(await response.blob(), 'coffee.png');
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
  $('scale').addEventListener('change', () => lastPicture && start(lastPicture.file, lastPicture.name));
  $('ensemble').addEventListener('change', () => lastPicture && start(lastPicture.file, lastPicture.name));
  $('cancel').addEventListener('click', () => current &&
    worker.postMessage({type: 'cancel', id: current.id}));
  $('download').addEventListener('click', download);
  $('slider').addEventListener('input', moveDivider);
  $('actual-size').addEventListener('change', (e) => $('compare').classList.toggle('actual', e.target.checked));
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
  worker.addEventListener('error', (e) => setStatus('error', `Error: the worker failed (${e.message})`));
}

async function main() {
  wire();
  moveDivider();
  try {
    const urls = await modelUrls();
    worker.postMessage({type: 'init', models: urls, backend: params.get('backend') || 'auto',
                        threads: Number(params.get('threads')) || 0});
  } catch (e) {
    setStatus('error', `Error: ${e.message}`);
  }
}

main();
