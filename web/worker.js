// The page's worker: interpolates the decoded picture, runs the network over exact
// tiles with one reused onnxruntime session per model, and sends back RGBA. Running
// here keeps the page responsive and lets a large picture be cancelled. (The page
// decodes the picture: its PNG decoder needs the page's import map.)
//
// Messages in:  {type: 'init', model: file, backend, threads}
//               {type: 'upscale', id, image: {width, height, pixels}, scale,
//                passes: [{file, scale, radius}, ...] (app.js's route), tile, ensemble}
//               {type: 'cancel', id}
// Messages out: {type: 'ready', backend, threads, note, isolated}
//               {type: 'progress', id, phase, done, total}
//               {type: 'result', id, width, height, pixels, before, tiles, timings, ...}
//               {type: 'cancelled', id} | {type: 'error', id, message}

import {Cancelled, UserError} from './errors.js';
import {composeTile, outputSize, paddedLuma, selfEnsemble, tileBoxes, tileInput}
  from './pipeline.js';
import {BICUBIC, LANCZOS, resize} from './resample.js';
import {createSession, openRuntime} from './runtime.js';

const MAX_BEFORE_PIXELS = 16e6;    // a bicubic copy for the comparison slider up to this size
// Output tile side by backend. A tile of t x t is computed from its (t + 2r)^2 window
// and the exported model pads that by r again, so the middle (most costly) layer of
// 9-5-5 (r = 8) works on (t + 20)^2 pixels: 8% extra at t = 512, 4% at 1024.
// wasm: 1024 (about 430 MB of float32 activations for 64 + 32 channels); WebGPU: 512,
// keeping each activation buffer (64 x 544^2 floats, 76 MB) under the 128 MiB
// storage-buffer limit that every WebGPU device offers.
const DEFAULT_TILES = {wasm: 1024, webgpu: 512};

const sessions = new Map();   // model file -> Promise of its session
let runtime = null;           // openRuntime's {ort, backend, threads, note, session}
let queue = Promise.resolve();
const jobs = new Map();       // id of each job queued or running -> whether it is cancelled

self.onmessage = ({data}) => {
  if (data.type === 'cancel') {
    if (jobs.has(data.id)) jobs.set(data.id, true);   // a finished job's id is not kept
  } else if (data.type === 'init') {
    queue = queue.then(() => init(data)).catch(reportError(null));
  } else if (data.type === 'upscale') {
    jobs.set(data.id, false);
    queue = queue.then(() => upscale(data)).catch(reportError(data.id))
      .finally(() => jobs.delete(data.id));
  }
};

function reportError(id) {
  return (e) => {
    if (e instanceof Cancelled) self.postMessage({type: 'cancelled', id});
    else self.postMessage({type: 'error', id, message: e.message || String(e)});
  };
}

// ---- models ----

async function fetchModel(url) {
  const response = await fetch(url);
  if (!response.ok) throw new UserError(`${url}: HTTP ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

// The backend is chosen with the first model, whose session is kept.
async function init({model: url, backend, threads}) {
  runtime = await openRuntime(await fetchModel(url), backend || 'auto', threads || 0);
  sessions.set(url, Promise.resolve(runtime.session));
  self.postMessage({type: 'ready', backend: runtime.backend, threads: runtime.threads,
                    note: runtime.note, isolated: self.crossOriginIsolated});
}

function sessionFor(url) {
  if (!sessions.has(url)) {
    const session = fetchModel(url).then((bytes) => createSession(runtime.ort, bytes,
                                                                  runtime.backend));
    sessions.set(url, session);
    // a failed creation is not kept: the next job with this model tries again
    session.catch(() => sessions.delete(url));
  }
  return sessions.get(url);
}

// ---- one upscale job ----

// Lets queued messages (a Cancel) in, then stops a cancelled job: a MessageChannel
// round trip is a task boundary without setTimeout's 4 ms clamp.
async function checkpoint(id) {
  await new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(null);
  });
  if (jobs.get(id)) throw new Cancelled();
}

// done / total: network passes (one per tile, eight per tile with the self-ensemble).
function progress(id, phase, done = 0, total = 0, passesPerTile = 1) {
  self.postMessage({type: 'progress', id, phase, done, total, passesPerTile});
}

// Bicubic RGBA picture (height, width, 4) -> refined in place, tile by tile; r: the
// model's receptive radius; ensemble: each tile's window through the x8 self-ensemble.
async function refineLuma(id, session, pixels, width, height, r, tile, ensemble) {
  const padded = paddedLuma(pixels, width, height, r);   // (height + 2r, width + 2r)
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
    composeTile(pixels, width, box, refined, r);
  }
  return {networkMs, tiles: boxes.length};
}

// Passes in order, each on the last one's result: bicubic enlargement by its model's scale
// (none at x1), refined by the model; a larger last result shrunk (Lanczos below x2).
async function upscale({id, image, passes, scale, tile, ensemble}) {
  await checkpoint(id);
  const sessions = await Promise.all(passes.map((m) => sessionFor(m.file)));   // each reused
  const t0 = performance.now();
  progress(id, 'interpolating');
  const {width, height} = outputSize(image.width, image.height, scale);
  const side = tile || DEFAULT_TILES[runtime.backend];
  // the comparison copy: the picture enlarged straight to the result's size
  const before = width * height <= MAX_BEFORE_PIXELS
    ? resize(image.pixels, image.width, image.height, width, height) : null;
  let {pixels, width: w, height: h} = image;   // RGBA (h, w, 4), from pass to pass
  if (!image.hasAlpha) image.pixels = null;   // gone with the first enlargement (~50 MB)
  let [refineMs, networkMs, tiles] = [0, 0, 0];
  for (const [i, model] of passes.entries()) {
    const size = outputSize(w, h, model.scale);
    if (model.scale > 1) {   // enlarged once: the first pass's may be the comparison copy
      pixels = !i && before && size.width === width && size.height === height ? before.slice()
        : resize(pixels, w, h, size.width, size.height);
    }
    ({width: w, height: h} = size);
    const start = performance.now();
    const pass = await refineLuma(id, sessions[i], pixels, w, h, model.radius, side, ensemble);
    refineMs += performance.now() - start;
    networkMs += pass.networkMs;
    tiles += pass.tiles;
  }
  const shrunk = w !== width || h !== height;
  if (shrunk) pixels = resize(pixels, w, h, width, height, scale < 2 ? LANCZOS : BICUBIC);
  if (image.hasAlpha && (shrunk || passes.length > 1)) {   // alpha enlarged once, as in Python
    const alpha = before || resize(image.pixels, image.width, image.height, width, height);
    for (let i = 3; i < pixels.length; i += 4) pixels[i] = alpha[i];
  }
  const transfer = before ? [pixels.buffer, before.buffer] : [pixels.buffer];
  self.postMessage({
    type: 'result', id, width, height, pixels, before, tiles,
    backend: runtime.backend, threads: runtime.threads,
    timings: {interpolateMs: performance.now() - t0 - refineMs, refineMs, networkMs},
  }, transfer);
}
