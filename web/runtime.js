// onnxruntime-web inside the worker: which backend, how many threads, one session per model.
//
// The runtime is loaded from node_modules (installed by `npm ci --prefix web`), never
// from a CDN. Backends are tried one at a time: a session created with
// executionProviders ['webgpu', 'wasm'] would fall back to wasm silently, and the page
// must say which one really runs.

const ORT_DIST = new URL('./node_modules/onnxruntime-web/dist/', import.meta.url);
// The WebGPU build also contains the CPU (wasm) kernels; the plain wasm build is
// smaller and is the one used when there is no WebGPU.
const BUILDS = {webgpu: 'ort.webgpu.min.mjs', wasm: 'ort.wasm.min.mjs'};

async function importRuntime(build) {
  const url = new URL(BUILDS[build], ORT_DIST);
  try {
    return await import(url.href);
  } catch (e) {
    throw new Error(`cannot load onnxruntime-web from ${url.pathname}: ` +
                    `run 'npm ci --prefix web' before serving the page (${e.message})`);
  }
}

// All cores when the page is cross-origin isolated (SharedArrayBuffer available),
// else 1: without isolation onnxruntime-web cannot start threads. The worker runs the
// model while the page's main thread idles, so ORT's default of half the cores is
// not needed here.
export function wantedThreads(requested) {
  if (!self.crossOriginIsolated) return 1;
  return requested > 0 ? requested : Math.min(navigator.hardwareConcurrency || 1, 16);
}

async function webgpuUnavailableReason() {
  if (!navigator.gpu) return 'this browser has no WebGPU';
  try {
    const adapter = await navigator.gpu.requestAdapter();
    return adapter ? null : 'no WebGPU adapter (GPU disabled or unsupported)';
  } catch (e) {
    return `WebGPU adapter request failed: ${e.message}`;
  }
}

export async function createSession(ort, modelBytes, backend) {
  return ort.InferenceSession.create(modelBytes, {
    executionProviders: [backend],   // exactly one: no silent fallback
    graphOptimizationLevel: 'all',
  });
}

// Pick the backend with the first model: WebGPU if the browser has an adapter and a
// session can be created on it, else wasm. preference: 'auto' | 'webgpu' | 'wasm'.
// -> {ort, backend, threads, note, session} where note says why WebGPU was not used.
export async function openRuntime(modelBytes, preference, requestedThreads) {
  let note = preference === 'wasm' ? 'wasm requested' : await webgpuUnavailableReason();
  if (!note) {
    const ort = await importRuntime('webgpu');
    try {
      const session = await createSession(ort, modelBytes, 'webgpu');
      return {ort, backend: 'webgpu', threads: 0, note: null, session};
    } catch (e) {
      note = `WebGPU session failed: ${e.message}`;
    }
  }
  if (preference === 'webgpu') throw new Error(`WebGPU requested but unavailable: ${note}`);
  const ort = await importRuntime('wasm');
  ort.env.wasm.numThreads = wantedThreads(requestedThreads);
  const session = await createSession(ort, modelBytes, 'wasm');
  // ORT lowers numThreads to 1 itself if threads cannot start; report what it kept.
  return {ort, backend: 'wasm', threads: ort.env.wasm.numThreads, note, session};
}
