"""Backends that run the network's valid core on one tile: ONNX Runtime (CPU, float32),
OpenVINO (CPU, bfloat16: cpu_runner picks between the two) or PyTorch.

A runner maps a luma window with its halo to the network output of the window's
centre, exactly like SRCNN.forward_valid:

    runner(window)   (h + 2r, w + 2r) float32 Y/255  ->  (h, w) float32

and says how many tiles it can usefully run at once (`workers`).  Tiling,
colour and files are someone else's business (sr/tiling.py, sr/upscaling.py).

Why ONNX Runtime on the CPU: its MLAS kernels run SRCNN's convolutions (fused
with the ReLUs, in its blocked NCHWc layout) 2.7x faster than PyTorch on the
same tiles for 9-1-5 and 1.4x for 9-5-5 on this project's 2-core machines, and
it needs no PyTorch at all (bench/upscale.py --variants; numbers in the README).
Each worker thread runs its own single-threaded session on its own tiles: as fast
as one session with 2 threads on a quiet machine, and 1.4x faster when other
processes share the cores (the cores never wait on each other inside a layer).

The graph is built here from the checkpoint's weights rather than read from the
file of sr.export.export_onnx: that file pads its input (mirror) for the
browser, which has the whole image; the tiles here bring their own halo.  Past
the pad it is the same network (tests/test_upscale_backends.py checks the
outputs against that file).  The graph computes the correction alone: a residual
network's input centre is added to it in float32 here, for both CPU engines.
"""

import copy
import io
import os
import queue
import threading

import numpy as np

from sr.errors import UserError

ONNX_OPSET = 18
ONNX_IR_VERSION = 9        # what every onnxruntime from 1.16 on reads


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    if hasattr(os, "sched_getaffinity"):   # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# The last layer has one output channel, which ONNX Runtime's blocked (NCHWc) kernels
# pad to a block of 16: on 9-1-5 it took 60% of the time for 10% of the work.  So it
# runs as 16 channels that each make one pixel of a 4x4 block of the output (a
# stride-4 convolution with 8x8 kernels holding the 5x5 one at 16 offsets), put in
# place by DepthToSpace: 2,048 instead of 12,800 multiply-adds per pixel.  The
# kernels' extra taps are exact zeros, so every output pixel adds the same products
# in the same order wherever it falls in a block (tiles stay byte-exact).
BLOCK = 4


def blocked_last_layer(weight: np.ndarray, bias: np.ndarray, block: int):
    """(1, C, k, k) kernel, (1,) bias -> (block^2, C, k + block - 1, ...) kernel and bias
    for a stride-`block` convolution whose channel i * block + j is output pixel (i, j)."""
    _, channels, k, _ = weight.shape
    size = k + block - 1
    blocked = np.zeros((block * block, channels, size, size), np.float32)
    for i in range(block):
        for j in range(block):
            blocked[i * block + j, :, i:i + k, j:j + k] = weight[0]
    return blocked, np.repeat(bias.astype(np.float32), block * block)


def valid_core_onnx(weights) -> bytes:
    """ONNX model of SRCNN.forward_valid from sr.model_files.Weights, less the residual
    sum: input "luma" (N, 1, H + 2r, W + 2r) -> output "refined" (N, 1, H, W), H and W
    multiples of BLOCK (OnnxRuntimeRunner pads the window to that)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w3, b3 = blocked_last_layer(weights.state["conv3.weight"], weights.state["conv3.bias"], BLOCK)
    arrays = {name: weights.state[name] for name in
              ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias")}
    arrays.update({"conv3.blocked_weight": w3, "conv3.blocked_bias": b3})
    inits = [numpy_helper.from_array(np.ascontiguousarray(v, np.float32), name)
             for name, v in arrays.items()]
    nodes = [helper.make_node("Conv", ["luma", "conv1.weight", "conv1.bias"], ["c1"]),
             helper.make_node("Relu", ["c1"], ["h1"]),
             helper.make_node("Conv", ["h1", "conv2.weight", "conv2.bias"], ["c2"]),
             helper.make_node("Relu", ["c2"], ["h2"]),
             helper.make_node("Conv", ["h2", "conv3.blocked_weight", "conv3.blocked_bias"],
                              ["c3_blocks"], strides=[BLOCK, BLOCK]),   # (N, 16, H/4, W/4)
             helper.make_node("DepthToSpace", ["c3_blocks"], ["refined"], blocksize=BLOCK)]
    graph = helper.make_graph(
        nodes, "srcnn_valid_core",
        [helper.make_tensor_value_info("luma", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info("refined", TensorProto.FLOAT, ["N", 1, "h", "w"])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              ir_version=ONNX_IR_VERSION, producer_name="srcnn-upscale")
    onnx.checker.check_model(model)
    return model.SerializeToString()


class OnnxRuntimeRunner:
    """ONNX Runtime's CPU provider: single-threaded sessions, one per tile in flight."""

    def __init__(self, weights, workers: int | None = None):
        self.radius, self.residual = weights.radius, weights.residual
        self.workers = workers or cpu_count()
        self._model = valid_core_onnx(weights)
        self._idle = queue.SimpleQueue()     # sessions not running a tile right now
        self._idle.put(self._new_session())  # fail early, in the calling thread

    def _new_session(self):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1     # parallel over tiles instead (see above)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        return ort.InferenceSession(self._model, options, providers=["CPUExecutionProvider"])

    def _infer(self, session, x: np.ndarray) -> np.ndarray:
        return session.run(None, {"luma": x})[0]

    def __call__(self, window: np.ndarray) -> np.ndarray:
        """(h + 2r, w + 2r) -> (h, w); the window is grown to whole 4x4 blocks first
        (edge repeated: the extra output rows and columns are dropped).  One session
        per call in flight; sessions are kept for the next pictures."""
        r = self.radius
        h, w = window.shape[0] - 2 * r, window.shape[1] - 2 * r
        grow = ((0, -h % BLOCK), (0, -w % BLOCK))
        x = np.pad(window, grow, mode="edge") if any(g for _, g in grow) else window
        x = np.ascontiguousarray(x, dtype=np.float32)[None, None]
        try:
            session = self._idle.get_nowait()
        except queue.Empty:
            session = self._new_session()
        try:   # copied before the session goes back: OpenVINO returns its own buffer
            out = self._infer(session, x)[0, 0, :h, :w]
            return out + x[0, 0, r:r + h, r:r + w] if self.residual else out.copy()
        finally:
            self._idle.put(session)

    engine, precision = "ONNX Runtime", "float32"
    reason = ""      # why this engine and precision (the upscale command's startup line)

    def describe(self) -> str:
        return f"{self.engine} CPU, {self.workers} worker(s), {self.precision}{self.reason}"


class OpenVinoRunner(OnnxRuntimeRunner):
    """OpenVINO's CPU plugin running the same graph's convolutions in bfloat16 (AMX or
    AVX512-BF16 units); the residual is added in float32, so bfloat16 touches only the
    correction.  Set5/Set14 PSNR within 0.02 dB of float32 and tiles still exact
    on the CPUs measured (numbers and commands in bench/upscale.py and the README)."""

    engine, precision = "OpenVINO", "bfloat16"

    def __init__(self, weights, workers: int | None = None):
        import openvino as ov
        self._ov, self._lock, self._compiled = ov, threading.Lock(), None
        super().__init__(weights, workers)   # whose first session compiles the graph

    def _new_session(self):
        if self._compiled is None:   # one 1-thread stream per worker
            core = self._ov.Core()
            model = core.read_model(io.BytesIO(self._model))
            self._compiled = core.compile_model(model, "CPU", {
                "INFERENCE_PRECISION_HINT": "bf16", "NUM_STREAMS": self.workers,
                "INFERENCE_NUM_THREADS": self.workers})
        return self._compiled.create_infer_request()

    def _infer(self, session, x: np.ndarray) -> np.ndarray:
        """Tensors are handed over under a lock, the tile computes outside it: with
        infer() from two threads, OpenVINO 2026.4 deadlocked in its input copy (in
        about 1 run in 5 of a small picture on 2 cores)."""
        with self._lock:
            session.set_input_tensor(self._ov.Tensor(x, shared_memory=True))
            session.start_async()
        session.wait()
        with self._lock:
            return session.get_output_tensor().data   # the request's buffer


# --precision on the CPU.  bfloat16 runs where the CPU has the units; int8 (ONNX
# Runtime, static, per channel) was measured and left out: 0.05-0.14 dB below float32
# on Set5 x2, above the 0.02 dB this project allows (bench/upscale.py --quality).
PRECISIONS = ("auto", "float32", "bfloat16")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")     # /proc/cpuinfo names of the units


def cpu_flags() -> set:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f
                         if line.startswith("flags")), set())
    except OSError:
        return set()


def openvino_installed() -> bool:
    import importlib.util
    return importlib.util.find_spec("openvino") is not None


def choose_precision(requested: str, flags: set, openvino: bool) -> tuple:
    """(precision, why) for the CPU path: auto takes bfloat16 wherever the CPU has the
    units (measured 2x float32 on AVX512-BF16 alone, 3.4x with AMX: README, Speed) and
    OpenVINO is installed.  UserError for bfloat16 where it cannot run."""
    if requested == "float32":
        return "float32", "asked for"
    units = [f for f in BF16_FLAGS if f in flags]
    why = f"CPU has {units[0]}" if units else "no bfloat16 units (AMX, AVX512-BF16) on this CPU"
    if units and not openvino:
        why += ", but OpenVINO is not installed (pip install -r requirements.txt)"
    precision = "bfloat16" if units and openvino else "float32"
    if requested == "bfloat16" and precision != "bfloat16":
        raise UserError(f"--precision bfloat16: {why}")
    return precision, why


def scoring_runner(model, device: str = "cpu", precision: str = "auto"):
    """What `eval` and training's validation run a PyTorch model with: on the CPU, the
    engine and precision `upscale` would pick (so a score is of the pixels upscale
    writes); on a GPU, PyTorch in float32."""
    if str(device) != "cpu":
        if precision == "bfloat16":
            raise UserError(f"--precision bfloat16 is for the CPU; on {device} the network "
                            f"runs in float32")
        return TorchRunner(model, device, half=False)
    from sr.checkpoint import weights_of
    return cpu_runner(weights_of(model), precision)


def cpu_runner(weights, requested: str = "auto", flags: set | None = None):
    """The CPU path's runner for --precision requested (flags: the CPU's, for tests)."""
    precision, why = choose_precision(requested, cpu_flags() if flags is None else flags,
                                      openvino_installed())
    runner = (OpenVinoRunner if precision == "bfloat16" else OnnxRuntimeRunner)(weights)
    runner.reason = f" ({why})"
    return runner


class TorchRunner:
    """PyTorch on any device.  On CUDA, a residual network runs its convolutions in
    float16 and adds the correction to the float32 input, so float16's 3 significant
    digits touch only the small correction: with the shipped x2 model (float16
    convolutions on the CPU) 1-2% of 8-bit values move by one level and Set5 PSNR
    by at most 0.002 dB.  A plain (non-residual) network stays in float32."""

    workers = 1   # PyTorch already spreads one tile over all cores

    def __init__(self, model, device="cpu", half: bool | None = None, tune: bool = False):
        """half: None = float16 on CUDA for residual models.  tune: let cuDNN time its
        algorithms per tile shape (a global setting: only for the upscale command, not
        for training's validation)."""
        import torch
        self.torch, self.model, self.device = torch, model.to(device), torch.device(device)
        self.radius = model.radius
        cuda = self.device.type == "cuda"
        self.half = (cuda and model.residual) if half is None else bool(half)
        if cuda and tune:
            torch.backends.cudnn.benchmark = True
        # float16 copies of the three layers; the float32 model stays as it is
        self._convs = ([copy.deepcopy(c).half() for c in (model.conv1, model.conv2, model.conv3)]
                       if self.half else None)

    def __call__(self, window: np.ndarray) -> np.ndarray:
        return self.run_batch(window[None])[0]

    def run_batch(self, windows: np.ndarray) -> np.ndarray:
        """Several windows of one size in one network call: (N, h + 2r, w + 2r) -> (N, h, w)."""
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))[:, None]
        x = x.to(self.device, non_blocking=True)
        with torch.inference_mode():
            y = self._forward_half(x) if self.half else self.model.forward_valid(x)
            return y[:, 0].float().cpu().numpy()

    def _forward_half(self, x):
        """forward_valid with float16 convolutions and a float32 residual sum."""
        torch = self.torch
        c1, c2, c3 = self._convs
        h = torch.relu(c1(x.half()))
        h = torch.relu(c2(h))
        r = self.radius
        return c3(h).float() + x[:, :, r:x.shape[2] - r, r:x.shape[3] - r]

    def describe(self) -> str:
        return f"PyTorch on {self.device}, {'float16' if self.half else 'float32'}"


class SelfEnsemble:
    """Any runner, run on the 8 rotations and mirror images of each window; the 8
    outputs are turned back and averaged ("geometric self-ensemble", Timofte et al.,
    "Seven ways to improve example-based single image super resolution", 2016).

    8x the work for a slightly better picture (measured in the README).  A turned
    window with its halo is still a window with its halo, so tiles stay exact."""

    def __init__(self, runner):
        self.runner = runner
        self.radius, self.workers = runner.radius, runner.workers

    def __call__(self, window: np.ndarray) -> np.ndarray:
        total = None
        for turns in range(4):
            for mirror in (False, True):
                view = np.rot90(window, turns)            # (h', w') turned window
                view = view[:, ::-1] if mirror else view
                out = self.runner(np.ascontiguousarray(view))
                out = np.rot90(out[:, ::-1] if mirror else out, -turns)  # back in place
                total = out.astype(np.float64) if total is None else total + out
        return (total / 8).astype(np.float32)

    def describe(self) -> str:
        return f"{self.runner.describe()}, x8 self-ensemble"
