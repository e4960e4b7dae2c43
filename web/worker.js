// The page's worker: decodes the picture, interpolates it, runs the network over
// exact tiles with one reused onnxruntime session per model, and sends back RGBA.
// Running here keeps the page responsive and lets a large picture be cancelled.
//
// Messages in:  {type: 'init', models: [url...], backend, threads}
//               {type: 'upscale', id, file: Blob, name, model: url, tile, ensemble}
//               {type: 'cancel', id}
// Messages out: {type: 'ready', models: [{url, meta}...], backend, threads, note, isolated}
//               {type: 'progress', id, phase, done, total}
//               {type: 'result', id, width, height, pixels, before, hasAlpha, timings, ...}
//               {type: 'cancelled', id} | {type: 'error', id, message, expected}

import {decodeImage} from './decode.js';
import {Cancelled, UserError} from './errors.js';
import {readMetadataProps} from './onnx-metadata.js';
import {composeTile, outputSize, paddedLuma, selfEnsemble, tileBoxes, tileInput}
  from './pipeline.js';
import {resizeBicubic} from './resample.js';
import {createSession, openRuntime} from './runtime.js';

const COLOUR_SPACE = 'bt601-studio-luma/255';   // what sr/export.py writes
// Larger results are refused with a message rather than risking the tab: 4000x3000 at
// x2 is 48 Mpix; about 12 bytes per output pixel are held at once (RGBA in the worker
// and on the canvas, float luma).
const MAX_OUTPUT_PIXELS = 64e6;
const MAX_OUTPUT_SIDE = 16384;     // canvas limit of common browsers
const MAX_BEFORE_PIXELS = 16e6;    // a bicubic copy for the comparison slider up to this size
// Output tile side by backend. A tile of t x t is computed from its (t + 2r)^2 window
// and the exported model pads that by r again, so the middle (most costly) layer of
// 9-5-5 (r = 8) works on (t + 20)^2 pixels: 8% extra at t = 512, 4% at 1024.
// wasm: 1024 (about 430 MB of float32 activations for 64 + 32 channels); WebGPU: 512,
// keeping each activation buffer (64 x 544^2 floats, 76 MB) under the 128 MiB
// storage-buffer limit that every WebGPU device offers.
const DEFAULT_TILES = {wasm: 1024, webgpu: 512};

const models = new Map();     // url -> {bytes, meta, session (Promise) | null}
let runtime = null;           // {ort, backend, threads, note}
let queue = Promise.resolve();
const jobs = new Set();       // ids of jobs queued or running
const cancelled = new Set();  // ids of those to stop (a finished job's id is not kept)

self.onmessage = ({data}) => {
  if (data.type === 'cancel') {
    if (jobs.has(data.id)) cancelled.add(data.id);
  } else if (data.type === 'init') {
    queue = queue.then(() => init(data)).catch(reportError(null));
  } else if (data.type === 'upscale') {
    jobs.add(data.id);
    queue = queue.then(() => upscale(data)).catch(reportError(data.id)).finally(() => {
      jobs.delete(data.id);
      cancelled.delete(data.id);   // a Cancel that came after the job's last checkpoint
    });
  }
};

function reportError(id) {
  return (e) => {
    if (e instanceof Cancelled) self.postMessage({type: 'cancelled', id});
    else self.postMessage({type: 'error', id, message: e.message || String(e),
                           expected: e instanceof UserError});
  };
}

// ---- models ----

function parseMetadata(url, bytes) {
  const props = readMetadataProps(bytes);
  const name = url.split('/').pop();
  for (const key of ['scale', 'radius', 'colour_space']) {
    if (!(key in props)) {
      throw new UserError(`${name}: no '${key}' in the ONNX metadata_props; ` +
                          `re-export it with 'python main.py export-onnx'`);
    }
  }
  if (props.colour_space !== COLOUR_SPACE) {
    throw new UserError(`${name}: colour space '${props.colour_space}' is not ${COLOUR_SPACE}`);
  }
  const scale = Number(props.scale);
  const radius = Number(props.radius);
  if (!Number.isInteger(scale) || scale < 1 || !Number.isInteger(radius) || radius < 0) {
    throw new UserError(`${name}: bad scale '${props.scale}' or radius '${props.radius}'`);
  }
  return {...props, scale, radius, file: name, bytes: bytes.length};
}

async function fetchModel(url) {
  const response = await fetch(url);
  if (!response.ok) throw new UserError(`${url}: HTTP ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function init({models: urls, backend, threads}) {
  for (const url of urls) {
    const bytes = await fetchModel(url);
    models.set(url, {bytes, meta: parseMetadata(url, bytes), session: null});
  }
  const first = models.get(urls[0]);
  const opened = await openRuntime(first.bytes, backend || 'auto', threads || 0);
  first.session = Promise.resolve(opened.session);
  runtime = {ort: opened.ort, backend: opened.backend, threads: opened.threads, note: opened.note};
  self.postMessage({
    type: 'ready', backend: runtime.backend, threads: runtime.threads, note: runtime.note,
    isolated: self.crossOriginIsolated,
    models: urls.map((url) => ({url, meta: models.get(url).meta})),
  });
}

function sessionFor(url) {
  const model = models.get(url);
  if (!model) throw new UserError(`unknown model ${url}`);
  if (!model.session) {
    const session = createSession(runtime.ort, model.bytes, runtime.backend);
    model.session = session;
    // a failed creation is not kept: the next job with this model tries again
    session.catch(() => {
      if (model.session === session) model.session = null;
    });
  }
  return model.session;
}

// ---- one upscale job ----

// Let queued messages (a Cancel) be handled between tiles: a MessageChannel round
// trip is a task boundary without setTimeout's 4 ms clamp.
function yieldToMessages() {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(null);
  });
}

async function checkpoint(id) {
  await yieldToMessages();
  if (cancelled.has(id)) {
    cancelled.delete(id);
    throw new Cancelled();
  }
}

// Refuses a picture of width x height whose result at scale is too large for the page.
function checkSize(width, height, scale) {
  const size = outputSize(width, height, scale);
  const pixels = size.width * size.height;
  if (pixels > MAX_OUTPUT_PIXELS || Math.max(size.width, size.height) > MAX_OUTPUT_SIDE) {
    throw new UserError(
      `${width}x${height} at x${scale} would be ${size.width}x${size.height} ` +
      `(${(pixels / 1e6).toFixed(0)} Mpix); this page handles at most ` +
      `${MAX_OUTPUT_PIXELS / 1e6} Mpix and ${MAX_OUTPUT_SIDE} px a side: ` +
      `pick a smaller scale or picture, or use 'python main.py upscale'`);
  }
}

// done / total: network passes (one per tile, eight per tile with the self-ensemble).
function progress(id, phase, done = 0, total = 0, passesPerTile = 1) {
  self.postMessage({type: 'progress', id, phase, done, total, passesPerTile});
}

// Bicubic RGBA picture (height, width, 4) -> refined in place, tile by tile;
// ensemble: each tile's window through the x8 self-ensemble.
async function refineLuma(id, session, pixels, width, height, radius, tile, ensemble) {
  const r = radius;
  const padded = paddedLuma(pixels, width, height, 4, r);   // (height + 2r, width + 2r)
  const boxes = tileBoxes(height, width, tile);
  const [inputName] = session.inputNames;
  const [outputName] = session.outputNames;
  let networkMs = 0;
  const perTile = ensemble ? 8 : 1;
  const total = boxes.length * perTile;
  let passes = 0;
  // (h, w) window -> the network's (h, w) output, a copy the session does not own.
  // Each pass first lets a Cancel in and then reports itself, so a one-tile picture
  // or an ensemble's eight passes show progress and stop within one pass.
  const run = async (data, h, w) => {
    await checkpoint(id);
    const dims = [1, 1, h, w];
    const start = performance.now();
    const input = new runtime.ort.Tensor('float32', data, dims);
    const output = (await session.run({[inputName]: input}))[outputName];
    networkMs += performance.now() - start;
    if (output.dims.join() !== dims.join()) {
      throw new UserError(`the model returned ${output.dims.join('x')} for ${dims.join('x')}: ` +
                          `not an SRCNN export of sr/export.py`);
    }
    const out = output.data.slice();
    output.dispose();
    progress(id, 'refining', ++passes, total, perTile);
    return out;
  };
  progress(id, 'refining', 0, total, perTile);
  for (const box of boxes) {
    const [h, w] = [box.h + 2 * r, box.w + 2 * r];
    const window = tileInput(padded, width + 2 * r, box, r);
    const refined = ensemble ? await selfEnsemble(run, window, h, w) : await run(window, h, w);
    composeTile(pixels, width, 4, box, refined, r);
  }
  return {networkMs, tiles: boxes.length};
}

// Decoded picture -> its bicubic enlargement to size, RGBA (height, width, 4). The
// source pixels are dropped as soon as they are used (a large photo is ~50 MB).
function interpolate(image, size) {
  const pixels = resizeBicubic(image.pixels, image.width, image.height, 4,
                               size.width, size.height);
  image.pixels = null;
  if (!image.hasAlpha) for (let i = 3; i < pixels.length; i += 4) pixels[i] = 255;
  return pixels;
}

async function upscale({id, file, name, model: url, tile, ensemble}) {
  await checkpoint(id);
  const {meta} = models.get(url) || {};
  if (!meta) throw new UserError(`unknown model ${url}`);
  const session = await sessionFor(url);   // created once per model, then reused
  const t0 = performance.now();
  progress(id, 'decoding');
  const image = await decodeImage(file, name, (w, h) => checkSize(w, h, meta.scale));
  const size = outputSize(image.width, image.height, meta.scale);
  const t1 = performance.now();
  await checkpoint(id);
  progress(id, 'interpolating');
  const pixels = interpolate(image, size);
  const before = size.width * size.height <= MAX_BEFORE_PIXELS ? pixels.slice() : null;
  const t2 = performance.now();
  const {networkMs, tiles} = await refineLuma(id, session, pixels, size.width, size.height,
                                              meta.radius, tile || DEFAULT_TILES[runtime.backend],
                                              Boolean(ensemble));
  const t3 = performance.now();
  const transfer = before ? [pixels.buffer, before.buffer] : [pixels.buffer];
  self.postMessage({
    type: 'result', id, width: size.width, height: size.height, pixels, before,
    hasAlpha: image.hasAlpha, grey: image.grey, iccProfile: image.iccProfile,
    source: {width: image.width, height: image.height, decoder: image.decoder},
    scale: meta.scale, tiles, ensemble: Boolean(ensemble), backend: runtime.backend,
    threads: runtime.threads,
    timings: {decodeMs: t1 - t0, interpolateMs: t2 - t1, refineMs: t3 - t2, networkMs,
              totalMs: t3 - t0},
  }, transfer);
}
