"""Speed of the browser page against native onnxruntime, on the same ONNX file and picture.

    flock /tmp/bench.lock python bench/web.py            # 1024x1024 picture, x2, 5 runs

Times, as medians of several runs after one warm-up run each:
  - native: Python onnxruntime (CPU, its default threads) doing the page's work: Pillow
    bicubic, YCbCr, the network over the same 1024-pixel tiles with halos, colour back;
    and the network alone on the whole picture in one call;
  - the page in headless Chromium, wasm backend, with threads (served with the
    COOP/COEP headers) and with one thread (served without them): the time from the
    pick to the result on screen and to the worker's result (the job), as the page measures
    them (data-* attributes of #details), and the network alone.
Then the ratios page / native. Needs chromium, Playwright and `npm ci --prefix web`.
The machine is shared: run it under flock and compare ratios from the same run.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sr.imaging import resize, rgb_to_ycbcr, to_uint8, ycbcr_to_rgb  # noqa: E402
from sr.tiling import tile_boxes  # noqa: E402

WEB = ROOT / "web"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
PAGE_TILE = 1024  # the page's tile on wasm (web/worker.js DEFAULT_TILES)


def make_picture(size: int, path: Path) -> Path:
    """The bundled sample, stretched to size x size with Pillow's bicubic."""
    Image.open(WEB / "samples" / "coffee.png").convert("RGB").resize(
        (size, size), Image.BICUBIC).save(path)
    return path


def median_seconds(fn, runs: int) -> float:
    fn()  # warm-up: first-call allocations, caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ---- native ----

def native_pipeline(session, picture: Path, scale: int, tile: int, radius: int):
    """The page's work with native code: (H, W, 3) uint8 result."""
    img = Image.open(picture).convert("RGB")
    bicubic = np.asarray(resize(img, (img.width * scale, img.height * scale)))
    ycc = rgb_to_ycbcr(bicubic)
    padded = np.pad(ycc[..., 0] / np.float32(255), radius, mode="reflect")  # the mirror halo
    height, width = ycc.shape[:2]
    for top, bottom, left, right in tile_boxes(height, width, tile):
        window = padded[top:bottom + 2 * radius, left:right + 2 * radius][None, None]
        (out,) = session.run(None, {"luma": np.ascontiguousarray(window)})
        ycc[top:bottom, left:right, 0] = out[0, 0, radius:-radius, radius:-radius] * 255
    return to_uint8(ycbcr_to_rgb(ycc))


def native_network(session, picture: Path, scale: int):
    """The network alone, the whole (bicubic-sized) luma plane in one call."""
    size = Image.open(picture).size
    x = np.random.default_rng(0).random((1, 1, size[1] * scale, size[0] * scale),
                                        dtype=np.float32)
    return lambda: session.run(None, {"luma": x})


def time_native(model: Path, picture: Path, scale: int, radius: int, runs: int) -> dict:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return {
        "pipeline": median_seconds(
            lambda: native_pipeline(session, picture, scale, PAGE_TILE, radius), runs),
        "network": median_seconds(native_network(session, picture, scale), runs),
    }


# ---- the page ----

def load_serve():
    spec = importlib.util.spec_from_file_location("web_serve", WEB / "serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_site(model: Path, scale: int, folder: Path) -> Path:
    """web/'s page files and runtime, with `model` as its only model."""
    from sr.export import web_model_name, write_model_index
    for path in WEB.iterdir():
        if path.suffix in {".html", ".js", ".css"}:
            (folder / path.name).symlink_to(path)
    (folder / "node_modules").symlink_to(WEB / "node_modules", target_is_directory=True)
    shutil.copy(model, folder / web_model_name(scale))
    write_model_index(folder)
    return folder


def time_page(browser, serve, site: Path, picture: Path, isolation: bool, runs: int) -> dict:
    server = serve.make_server(site, port=0, isolation=isolation, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = browser.new_page()
    try:
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html"
                  f"?backend=wasm")
        page.wait_for_selector("#status[data-state=idle]", timeout=120_000)
        runtime = page.inner_text("#runtime")
        job_ms, wall = [], []
        for i in range(runs + 1):   # the first run warms up
            page.evaluate("() => { document.getElementById('file').value = ''; }")
            start = time.perf_counter()
            page.set_input_files("#file", str(picture))
            page.wait_for_selector("#status[data-state=done], #status[data-state=error]",
                                   timeout=600_000)
            elapsed = time.perf_counter() - start
            if page.get_attribute("#status", "data-state") != "done":
                raise RuntimeError(page.inner_text("#status"))
            if i:
                details = page.eval_on_selector("#details", "e => ({...e.dataset})")
                job_ms.append({k: float(v) for k, v in details.items()})
                wall.append(elapsed)
            page.evaluate("() => { document.getElementById('status').dataset.state = 'idle'; }")
        return {"runtime": runtime, "wall": statistics.median(wall),
                "job": statistics.median(t["totalMs"] for t in job_ms) / 1000,
                "shown": statistics.median(t["shownMs"] for t in job_ms) / 1000,
                "network": statistics.median(t["networkMs"] for t in job_ms) / 1000}
    finally:
        page.close()
        server.shutdown()
        server.server_close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", type=Path, default=WEB / "srcnn.onnx", help="ONNX file")
    p.add_argument("--size", type=int, default=1024, help="picture side in pixels")
    p.add_argument("--runs", type=int, default=5, help="timed runs per configuration")
    args = p.parse_args(argv)
    from playwright.sync_api import sync_playwright
    from sr.export import read_metadata
    meta = read_metadata(args.model)
    scale, radius = int(meta["scale"]), int(meta["radius"])
    with tempfile.TemporaryDirectory() as tmp:
        picture = make_picture(args.size, Path(tmp) / f"bench{args.size}.png")
        (Path(tmp) / "site").mkdir()
        site = make_site(args.model, scale, Path(tmp) / "site")
        native = time_native(args.model, picture, scale, radius, args.runs)
        serve = load_serve()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            threaded = time_page(browser, serve, site, picture, True, args.runs)
            single = time_page(browser, serve, site, picture, False, args.runs)
            version = browser.version
            browser.close()
    report(args, meta, native, threaded, single, version)
    return 0


def report(args, meta, native, threaded, single, chromium_version) -> None:
    out = args.size * int(meta["scale"])
    print(f"picture {args.size}x{args.size} -> {out}x{out} (x{meta['scale']}), model "
          f"{args.model} ({meta.get('architecture')}), median of {args.runs} runs; "
          f"{os.cpu_count()} CPUs; onnxruntime {ort.__version__}; Chromium {chromium_version}")
    print(f"page, threads:     {threaded['runtime']}")
    print(f"page, one thread:  {single['runtime']}")
    print()
    print(f"{'':34}{'on screen':>10}{'job':>8}{'network':>9}{'harness':>9}")
    print(f"{'native onnxruntime, page pipeline':34}{'':>10}{native['pipeline']:>7.2f}s")
    print(f"{'native onnxruntime, one call':34}{'':>18}{native['network']:>8.2f}s")
    for name, t in [("page wasm, threads", threaded), ("page wasm, one thread", single)]:
        print(f"{name:34}{t['shown']:>9.2f}s{t['job']:>7.2f}s{t['network']:>8.2f}s"
              f"{t['wall']:>8.2f}s")
    print()
    print("on screen: from the pick to the result drawn, as the page measures it; job: to "
          "the worker's result (decoding, interpolation, network); harness: Playwright's "
          "wall time around it")
    for name, t in [("threads", threaded), ("one thread", single)]:
        print(f"ratio page/native ({name}): on screen {t['shown'] / native['pipeline']:.2f}x, "
              f"job {t['job'] / native['pipeline']:.2f}x, "
              f"network {t['network'] / native['network']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
