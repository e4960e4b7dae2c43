"""The browser demo in a real Chromium: results match `main.py upscale`, errors show.

Needs Playwright for Python, Debian's chromium (/usr/bin/chromium) and
`npm ci --prefix web` (tools/install-test-deps.sh does all three). The page is
served from a temporary copy of web/ with models made here, by web/serve.py.
A screenshot is saved under test-artifacts/.
"""
from __future__ import annotations

import base64
import importlib.util
import io
import shutil
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

import main
import srcnn
from sr.checkpoint import publish_model
from sr.jpeg import estimate_quality, level_for_quality, training_qualities
from sr.pictures import read_picture

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Playwright is not installed (pip install playwright)")

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
# Without the networking flags Chromium keeps calling out to a network that is closed here.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
WEBGPU_SOFTWARE_FLAGS = ["--enable-unsafe-webgpu", "--enable-features=Vulkan",
                         "--use-vulkan=swiftshader", "--use-webgpu-adapter=swiftshader",
                         "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                         "--disable-vulkan-surface"]
TIMEOUT_MS = 120_000

if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)",
                allow_module_level=True)


def load_serve_module():
    spec = importlib.util.spec_from_file_location("web_serve", WEB / "serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


serve = load_serve_module()


# ---- models, pictures and the site ----

def perturbed_model(architecture, filters, seed):
    """An SRCNN that is not the identity: random first layers, a non-zero last one."""
    torch.manual_seed(seed)
    model = srcnn.build(architecture, filters=filters)
    with torch.no_grad():
        model.conv3.weight.normal_(0, 0.02)
        model.conv3.bias.fill_(0.005)
    return model.eval()


def fixture_picture(width=97, height=61, seed=5) -> Image.Image:
    """Odd, non-square RGBA: texture and edges, alpha with opaque, translucent and
    fully transparent parts, and colour kept under the transparent ones."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    rgb = np.stack([128 + 100 * np.sin(x / 7), 128 + 90 * np.cos(y / 5),
                    (x * 3 + y * 5) % 256], axis=-1)
    rgb += rng.normal(0, 14, rgb.shape)
    rgb[20:40, 30:50] = [250, 20, 40]                      # a hard-edged block
    alpha = np.clip((x - 8) * 9, 0, 255)                   # transparent -> opaque ramp
    alpha[35:50, 60:85] = 0                                # a transparent hole
    alpha[5:15, 70:90] = 128                               # translucent patch
    pixels = np.dstack([rgb, alpha])
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGBA")


def make_site(root: Path, specs) -> dict:
    """A copy of web/ in root with test models exported by `main.py export-onnx`, one
    per (scale, JPEG level, architecture, filters) of specs; their model files in the
    site's own models folder, and the clean ones' by scale."""
    missing = serve.check_runtime_installed(WEB)
    if missing:
        pytest.fail(f"{missing} (tools/install-test-deps.sh does)")
    for path in WEB.iterdir():
        if path.suffix in {".html", ".js", ".css"}:
            shutil.copy(path, root / path.name)
    shutil.copytree(WEB / "samples", root / "samples")
    (root / "node_modules").symlink_to(WEB / "node_modules", target_is_directory=True)
    models, checkpoints = root.parent / f"{root.name}-models", {}   # one folder per site
    for scale, level, architecture, filters in specs:
        model = perturbed_model(architecture, filters, seed=scale + 10 * level)
        jpeg = {"resize": "bicubic", "jpeg": list(training_qualities(level))} if level else None
        checkpoints[scale, level] = publish_model(models / f"x{scale}_jpeg{level}.safetensors",
                                                  model, scale, jpeg)
    assert main.main(["export-onnx", "--models", str(models), "--web", str(root)]) == 0
    return {"root": root, "models": models,
            "checkpoints": {s: path for (s, level), path in checkpoints.items() if not level}}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Clean x2 (9-1-5), x3 (9-5-5) and x4 (9-1-5), JPEG level 2 models for x2 and x1
    (none for levels 1 and 3; at x3 and x4 level 2 routes through its x2 model twice)."""
    return make_site(tmp_path_factory.mktemp("site"), [
        (2, 0, "9-1-5", (64, 32)), (3, 0, "9-5-5", (32, 16)), (4, 0, "9-1-5", (16, 8)),
        (2, 2, "9-1-5", (32, 16)), (1, 2, "9-1-5", (32, 16))])


def serving(root, isolation):
    """Serve root on a free loopback port in a thread; yields the page's address."""
    server = serve.make_server(root, port=0, isolation=isolation, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def url(site):
    yield from serving(site["root"], isolation=True)


@pytest.fixture(scope="module")
def url_without_isolation(site):
    yield from serving(site["root"], isolation=False)


@pytest.fixture(scope="module")
def playwright():
    with sync_api.sync_playwright() as driver:   # one per module: they cannot nest
        yield driver


@pytest.fixture(scope="module")
def browser(playwright):
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS,
                                          headless=True)
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def webgpu_browser(playwright):
    """Chromium with a software WebGPU adapter (SwiftShader's Vulkan, shipped with
    Debian's chromium), so the WebGPU code path runs without a GPU."""
    flags = [f for f in CHROMIUM_FLAGS if f != "--disable-gpu"] + WEBGPU_SOFTWARE_FLAGS
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=flags,
                                          headless=True)
    yield chromium
    chromium.close()


def checked_page(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def page(browser):
    yield from checked_page(browser)


@pytest.fixture
def webgpu_page(webgpu_browser, url):
    """A page in the software-WebGPU browser; the test is skipped where Chromium
    offers no WebGPU adapter at all (a page that fails on one that exists fails)."""
    for page in checked_page(webgpu_browser):
        page.goto(url + "models.json")   # WebGPU needs a secure context: not about:blank
        if not page.evaluate("async () => !!(await navigator.gpu?.requestAdapter())"):
            pytest.skip("this Chromium has no WebGPU adapter, not even SwiftShader's")
        yield page


# ---- helpers ----

def open_page(page, address, query=""):
    page.goto(address + "index.html" + query)
    page.wait_for_selector("#status[data-state=idle], #status[data-state=error]",
                           timeout=TIMEOUT_MS)
    assert page.get_attribute("#status", "data-state") == "idle", page.inner_text("#status")


def upscale_on_page(page, picture: Path, scale: int) -> str:
    page.select_option("#scale", str(scale))
    page.set_input_files("#file", str(picture))
    page.wait_for_selector("#status[data-state=done], #status[data-state=error]",
                           timeout=TIMEOUT_MS)
    return page.get_attribute("#status", "data-state")


def downloaded_result(page) -> Image.Image:
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.click("#download")
    return Image.open(download.value.path()).copy()


def canvas_rgba(page) -> np.ndarray:
    """canvas#result's pixels, (H, W, 4). A 2D canvas premultiplies alpha, so only
    opaque pixels read back exactly."""
    width, height, data = page.evaluate("""() => {
        const c = document.getElementById('result');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let s = ''; for (let i = 0; i < d.length; i += 8192)
            s += String.fromCharCode(...d.subarray(i, i + 8192));
        return [c.width, c.height, btoa(s)];
    }""")
    return np.frombuffer(base64.b64decode(data), np.uint8).reshape(height, width, 4)


def python_upscale(picture: Path, checkpoint: Path, scale: int, out_dir: Path,
                   *flags: str) -> Image.Image:
    """The reference: `main.py upscale` on the same picture and model."""
    main.main(["upscale", "-i", str(picture), "-o", str(out_dir), "--model", str(checkpoint),
               "--scale", str(scale), "--cpu", *flags])
    (result,) = out_dir.glob(f"{picture.stem}.*.png")
    return Image.open(result).copy()


def fraction_within_one_level(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels whose every channel differs by at most 1."""
    return float((np.abs(a.astype(int) - b.astype(int)) <= 1).all(axis=-1).mean())


# ---- tests ----

@pytest.mark.parametrize("scale, tile", [(2, 32), (3, 512)])
def test_page_matches_python_upscale(page, url, site, tmp_path, scale, tile):
    picture = tmp_path / "fixture.png"
    fixture_picture().save(picture)
    want = np.asarray(python_upscale(picture, site["checkpoints"][scale], scale,
                                     tmp_path / "python"))
    assert want.shape == (61 * scale, 97 * scale, 4)

    open_page(page, url, f"?tile={tile}")   # tile 32: many tiles, so the halos matter
    assert upscale_on_page(page, picture, scale) == "done", page.inner_text("#status")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"web-x{scale}.png"), full_page=True)

    got = downloaded_result(page)
    assert got.mode == "RGBA" and got.size == (97 * scale, 61 * scale)
    got = np.asarray(got)
    share = fraction_within_one_level(got, want)
    assert share >= 0.999, f"only {share:.4%} of pixels within 1 level of main.py upscale"
    np.testing.assert_array_equal(got[..., 3], want[..., 3])   # alpha: bicubic only, exact

    shown = canvas_rgba(page)
    assert shown.shape == want.shape   # drawn at full resolution
    opaque = want[..., 3] == 255
    assert fraction_within_one_level(shown[opaque], want[opaque]) >= 0.999


def test_a_translucent_webp_matches_python_upscale_under_transparency(page, url, site,
                                                                      tmp_path):
    """The colour kept under transparent pixels of a WebP reaches the result as in
    Python: bicubic spreads it into the visible neighbours."""
    picture = tmp_path / "fixture.webp"
    fixture_picture().save(picture, "WEBP", lossless=True, exact=True)
    want = np.asarray(python_upscale(picture, site["checkpoints"][2], 2, tmp_path / "python",
                                     "--format", "png"))
    open_page(page, url)
    assert upscale_on_page(page, picture, 2) == "done", page.inner_text("#status")
    got = np.asarray(downloaded_result(page))
    share = fraction_within_one_level(got, want)         # every pixel, not only opaque ones
    assert share >= 0.999, f"only {share:.4%} of pixels within 1 level of main.py upscale"


def test_a_translucent_png_routed_through_two_passes_gets_python_upscales_alpha(page, url,
                                                                                site,
                                                                                tmp_path,
                                                                                capsys):
    """JPEG level 2 chosen for a translucent PNG at x3: its x2 model twice, shrunk to x3.
    Alpha is enlarged once, straight to the result's size, as main.py upscale does (not
    pass by pass with the colour)."""
    picture = tmp_path / "fixture.png"
    fixture_picture().save(picture)
    want, _ = cli_upscale_by_level(picture, site["models"], 3, tmp_path / "python", capsys,
                                   "--denoise", "2")
    open_page(page, url)
    page.select_option("#denoise", "2")
    assert upscale_on_page(page, picture, 3) == "done", page.inner_text("#status")
    assert (page.inner_text("#choice")
            == "JPEG level 2 chosen → x2 model for JPEG level 2, twice, shrunk to x3")
    got = np.asarray(downloaded_result(page))
    np.testing.assert_array_equal(got[..., 3], want[..., 3])
    share = fraction_within_one_level(got, want)
    assert share >= 0.999, f"only {share:.4%} of pixels within 1 level of main.py upscale"


@pytest.mark.parametrize("scale, chosen", [(1.5, "x2 clean model, shrunk to x1.5"),
                                           (2.5, "x2 clean model, twice, shrunk to x2.5")])
def test_a_fractional_scale_shrinks_the_x2_models_result_as_python_upscale(page, url, site,
                                                                           tmp_path, capsys,
                                                                           scale, chosen):
    """x1.5: the x2 model's result shrunk with Lanczos; x2.5: the x2 model twice (not
    the x3 one the site also has), its x4 result shrunk with bicubic; sides rounded half
    to even (97x61 -> 146x92, 242x152); alpha enlarged once. As main.py upscale."""
    picture = tmp_path / "fixture.png"
    fixture_picture().save(picture)
    want, _ = cli_upscale_by_level(picture, site["models"], scale, tmp_path / "python", capsys)
    open_page(page, url)
    assert upscale_on_page(page, picture, scale) == "done", page.inner_text("#status")
    assert page.inner_text("#choice") == f"not a JPEG → {chosen}"
    got = np.asarray(downloaded_result(page))
    assert got.shape == want.shape == {1.5: (92, 146, 4), 2.5: (152, 242, 4)}[scale]
    np.testing.assert_array_equal(got[..., 3], want[..., 3])
    share = fraction_within_one_level(got, want)
    assert share >= 0.999, f"only {share:.4%} of pixels within 1 level of main.py upscale"


@pytest.mark.parametrize("mode", ["L", "LA"])
def test_a_grey_png_comes_back_grey_as_from_python(page, url, site, tmp_path, mode):
    picture = tmp_path / "grey.png"
    fixture_picture(41, 29).convert(mode).save(picture)
    want = python_upscale(picture, site["checkpoints"][2], 2, tmp_path / "python")
    assert want.mode == mode
    open_page(page, url)
    assert upscale_on_page(page, picture, 2) == "done", page.inner_text("#status")
    got = downloaded_result(page)
    assert got.mode == mode and got.size == want.size
    share = fraction_within_one_level(np.asarray(got).reshape(29 * 2, 41 * 2, -1),
                                      np.asarray(want).reshape(29 * 2, 41 * 2, -1))
    assert share >= 0.999, f"only {share:.4%} of pixels within 1 level of main.py upscale"


def test_self_ensemble_matches_python_upscale_ensemble(page, url, site, tmp_path):
    picture = tmp_path / "small.png"
    fixture_picture(41, 29).save(picture)
    want = np.asarray(python_upscale(picture, site["checkpoints"][3], 3, tmp_path / "ens",
                                     "--ensemble"))
    plain = np.asarray(python_upscale(picture, site["checkpoints"][3], 3, tmp_path / "plain"))

    open_page(page, url, "?tile=24")   # several tiles, each through the 8 turns
    page.check("#ensemble")
    assert upscale_on_page(page, picture, 3) == "done", page.inner_text("#status")
    assert "x8 self-ensemble" in page.inner_text("#details")
    got = np.asarray(downloaded_result(page))
    share = fraction_within_one_level(got, want)
    assert share >= 0.999, f"only {share:.4%} of pixels within 1 level of upscale --ensemble"
    # and not the plain result: the 8 turns move many pixels by a level or more
    off_ensemble, off_plain = (np.abs(got.astype(int) - x).mean() for x in (want, plain))
    assert off_ensemble < off_plain / 4


def test_webgpu_backend_matches_python_upscale(webgpu_page, url, site, tmp_path):
    picture = tmp_path / "tiny.png"
    fixture_picture(23, 17).save(picture)   # software WebGPU is slow: a tiny picture
    want = np.asarray(python_upscale(picture, site["checkpoints"][2], 2, tmp_path / "python"))
    open_page(webgpu_page, url, "?backend=webgpu")
    assert webgpu_page.inner_text("#runtime").startswith("Backend: WebGPU")
    assert upscale_on_page(webgpu_page, picture, 2) == "done", webgpu_page.inner_text("#status")
    assert "WebGPU" in webgpu_page.inner_text("#details")
    got = np.asarray(downloaded_result(webgpu_page))
    share = fraction_within_one_level(got, want)
    assert share >= 0.999, f"only {share:.4%} of pixels within 1 level of main.py upscale"


def test_cancel_stops_a_job_on_webgpu(webgpu_page, url, tmp_path):
    picture = tmp_path / "tiny.png"
    fixture_picture(23, 17).save(picture)
    open_page(webgpu_page, url, "?backend=webgpu&tile=8")   # 30 tiles of 8 x 8 at x2
    webgpu_page.set_input_files("#file", str(picture))
    # any tile: a fast tile 1 may be gone before the selector looks
    webgpu_page.wait_for_selector("#status:text-matches('tile [0-9]+ of 30')", timeout=TIMEOUT_MS)
    webgpu_page.click("#cancel")
    # idle, not done: the worker stopped the job before its last tile
    webgpu_page.wait_for_selector("#status[data-state=idle], #status[data-state=done]",
                                  timeout=TIMEOUT_MS)
    assert webgpu_page.inner_text("#status") == "Cancelled tiny.png."
    assert webgpu_page.is_hidden("#output") and webgpu_page.is_hidden("#cancel")


def test_non_image_file_shows_an_error(page, url, tmp_path):
    open_page(page, url)
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not a picture\n")
    page.set_input_files("#file", str(notes))
    page.wait_for_selector("#status[data-state=error]", timeout=TIMEOUT_MS)
    assert page.is_visible("#status")
    assert "notes.txt: not a readable image" in page.inner_text("#status")

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    page.set_input_files("#file", str(broken))
    page.wait_for_selector("#status[data-state=error]:has-text('broken.png')", timeout=TIMEOUT_MS)
    assert "damaged PNG" in page.inner_text("#status")


def test_threads_with_isolation_and_one_thread_without(page, url, url_without_isolation,
                                                       tmp_path):
    picture = tmp_path / "small.png"
    fixture_picture(23, 17).save(picture)

    open_page(page, url)
    isolated = page.inner_text("#runtime")
    assert "wasm" in isolated and "not cross-origin isolated" not in isolated

    open_page(page, url_without_isolation)
    plain = page.inner_text("#runtime")
    assert "1 thread" in plain and "not cross-origin isolated" in plain
    assert upscale_on_page(page, picture, 2) == "done", page.inner_text("#status")
    assert "1 thread" in page.inner_text("#details")


def test_cancel_stops_a_running_job(page, url, tmp_path):
    picture = tmp_path / "big.png"
    fixture_picture(160, 120).save(picture)
    open_page(page, url, "?tile=8")   # 1200 tiles: time enough to press Cancel
    page.set_input_files("#file", str(picture))
    page.wait_for_selector("#status:has-text('tile')", timeout=TIMEOUT_MS)
    page.click("#cancel")
    page.wait_for_selector("#status[data-state=idle]", timeout=TIMEOUT_MS)
    assert "Cancelled" in page.inner_text("#status")
    assert page.is_hidden("#cancel")


def test_choosing_the_same_file_again_after_cancel_starts_it_again(page, url, tmp_path):
    picture = tmp_path / "big.png"
    fixture_picture(160, 120).save(picture)
    open_page(page, url, "?tile=8")
    for _ in range(2):
        page.set_input_files("#file", str(picture))
        page.wait_for_selector("#status:has-text('tile')", timeout=TIMEOUT_MS)
        page.click("#cancel")
        page.wait_for_selector("#status[data-state=idle]", timeout=TIMEOUT_MS)


def test_cancel_stops_the_self_ensemble_between_its_passes(page, url, tmp_path):
    picture = tmp_path / "one-tile.png"
    fixture_picture(300, 200).save(picture)   # x3: 900 x 600, one tile of the default 1024
    open_page(page, url)
    page.check("#ensemble")
    page.select_option("#scale", "3")
    page.set_input_files("#file", str(picture))
    page.wait_for_selector("#status:has-text('pass 1 of 8')", timeout=TIMEOUT_MS)
    page.click("#cancel")
    page.wait_for_selector("#status[data-state=idle]", timeout=TIMEOUT_MS)
    assert "Cancelled one-tile.png" in page.inner_text("#status")


def test_a_new_job_hides_the_last_result_and_downloads_name_their_picture(page, url,
                                                                           tmp_path):
    first = tmp_path / "first.png"
    fixture_picture(23, 17).save(first)
    open_page(page, url)
    assert upscale_on_page(page, first, 2) == "done"
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.click("#download")
    assert download.value.suggested_filename == "first.x2.png"

    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    page.set_input_files("#file", str(notes))
    page.wait_for_selector("#status[data-state=error]", timeout=TIMEOUT_MS)
    assert page.is_hidden("#output")   # first.png's result is not offered as notes.png's

    page.check("#ensemble")
    assert upscale_on_page(page, first, 2) == "done"
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.click("#download")
    assert download.value.suggested_filename == "first.x2.ensemble.png"


def test_a_result_shown_late_does_not_cover_the_next_job(page, url, tmp_path):
    """A result without the bicubic 'before' picture (over 16 Mpix) waits for the browser
    to decode the original; a picture picked meanwhile must not have the old result
    shown, 'done' said and Cancel hidden while it runs. Here every result comes without
    'before' and createImageBitmap waits until the test opens it."""
    page.add_init_script("""
        const listen = Worker.prototype.addEventListener;
        Worker.prototype.addEventListener = function (type, listener, ...rest) {
          if (type !== 'message') return listen.call(this, type, listener, ...rest);
          const withoutBefore = (e) => listener(
            e.data && e.data.type === 'result' ? {data: {...e.data, before: null}} : e);
          return listen.call(this, type, withoutBefore, ...rest);
        };
        const decode = self.createImageBitmap;
        // decodes wait in a queue and open() lets the oldest through: the second
        // picture's decode may start waiting before the first one is let through
        window.gate = {waiting: 0, passed: 0, queue: [],
                       open: () => window.gate.queue.shift()()};
        self.createImageBitmap = async (...args) => {
          const opened = new Promise((resolve) => window.gate.queue.push(resolve));
          window.gate.waiting++;
          await opened;
          try { return await decode(...args); } finally { window.gate.passed++; }
        };
    """)
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    fixture_picture(23, 17).save(first)
    fixture_picture(60, 40).save(second)
    open_page(page, url, "?tile=8")
    page.set_input_files("#file", str(first))
    page.wait_for_function("window.gate.waiting === 1", timeout=TIMEOUT_MS)
    page.set_input_files("#file", str(second))   # while first.png's result waits
    page.wait_for_selector("#status:has-text('second.png')", timeout=TIMEOUT_MS)
    page.evaluate("window.gate.open()")
    page.wait_for_function("window.gate.passed === 1", timeout=TIMEOUT_MS)
    page.evaluate("new Promise((resolve) => setTimeout(resolve, 100))")
    assert page.get_attribute("#status", "data-state") == "running", page.inner_text("#status")
    assert page.is_hidden("#output") and page.is_visible("#cancel")

    page.wait_for_function("window.gate.waiting === 2", timeout=TIMEOUT_MS)
    page.evaluate("window.gate.open()")
    page.wait_for_selector("#status[data-state=done]", timeout=TIMEOUT_MS)
    assert page.is_visible("#output") and "60×40 → 120×80" in page.inner_text("#details")
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.click("#download")
    assert download.value.suggested_filename == "second.x2.png"


def test_a_picture_too_large_is_refused_from_its_png_header(page, url, tmp_path):
    """50000 x 50000 in the header, a few bytes of data: refused before anything is
    inflated or allocated (that took the tab's memory: 'Array buffer allocation failed')."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))
    header = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    open_page(page, url)
    page.set_input_files("#file", str(bomb))
    page.wait_for_selector("#status[data-state=error]", timeout=TIMEOUT_MS)
    assert "bomb.png: 50000x50000 at x2 would be 100000x100000" in page.inner_text("#status")
    # x3 of JPEG level 2 runs its x2 model twice: refused by the x4 intermediate's size
    header = struct.pack(">IIBBBBB", 4500, 100, 8, 2, 0, 0, 0)
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    page.select_option("#denoise", "2")
    assert upscale_on_page(page, bomb, 3) == "error"
    assert "bomb.png: 4500x100 at x4 would be 18000x400" in page.inner_text("#status")


# ---- the page's own decoder and resampler against Pillow ----

def png_bytes(image: Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **params)
    return buffer.getvalue()


def pillow_view(data: bytes) -> np.ndarray:
    """RGBA as sr/upscaling.py sees a PNG: alpha kept for RGBA/LA/P+tRNS, else opaque."""
    img = Image.open(io.BytesIO(data))
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    rgba = img.convert("RGBA") if has_alpha else img.convert("RGB").convert("RGBA")
    return np.asarray(rgba)


def raw_png(samples: np.ndarray, colour_type: int, interlaced: bool = False) -> bytes:
    """A PNG written by hand (Pillow writes neither 16-bit RGB nor interlaced files).
    samples: (H, W, C) bool (1 bit), uint8 or uint16 (written big-endian); every row
    unfiltered."""
    height, width = samples.shape[:2]
    depth = {np.dtype(bool): 1, np.dtype(np.uint16): 16}.get(samples.dtype, 8)
    passes = ([(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
               (1, 0, 2, 2), (0, 1, 1, 2)] if interlaced else [(0, 0, 1, 1)])
    data = b""
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        rows = (np.packbits(r) if depth == 1 else r.astype(">u2" if depth == 16 else np.uint8)
                for r in sub)
        data += b"".join(b"\0" + row.tobytes() for row in rows)

    def chunk(kind, body):
        return (len(body).to_bytes(4, "big") + kind + body
                + zlib.crc32(kind + body).to_bytes(4, "big"))
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, int(interlaced))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(data))
            + chunk(b"IEND", b""))


def to_8bit(values: np.ndarray) -> np.ndarray:
    """16-bit -> 8-bit by rounding v / 257, as sr/pictures.py (and the page) do."""
    return ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def png_variants() -> dict:
    """{name: (PNG bytes, expected RGBA or None for Pillow's reading)}."""
    rgba = fixture_picture(37, 29)
    rgb = rgba.convert("RGB")
    wide = (np.asarray(rgba).astype(np.uint32) * 257
            + np.random.default_rng(3).integers(-128, 128, (29, 37, 4))).clip(0, 65535)
    wide = wide.astype(np.uint16)   # 16-bit samples whose low byte matters
    opaque = np.dstack([to_8bit(wide[..., :3]), np.full((29, 37), 255, np.uint8)])
    pillow = {
        "rgba": png_bytes(rgba),
        "rgb": png_bytes(rgb),
        "grey": png_bytes(rgb.convert("L")),
        "grey+alpha": png_bytes(rgba.convert("LA")),
        "1-bit grey": png_bytes(rgb.convert("1")),
        "palette": png_bytes(rgb.quantize(50)),
        "4-bit palette + tRNS": png_bytes(rgb.quantize(16), transparency=3, bits=4),
        "interlaced rgba": raw_png(np.asarray(rgba), 6, interlaced=True),
        "interlaced grey": raw_png(np.asarray(rgb.convert("L"))[..., None], 0, interlaced=True),
        # fast-png cannot unpack these: the browser decodes them
        "interlaced 1-bit grey": raw_png(np.asarray(rgb.convert("1"))[..., None], 0,
                                         interlaced=True),
    }
    return {**{name: (data, None) for name, data in pillow.items()},
            "16-bit rgb": (raw_png(wide[..., :3], 2), opaque),
            "16-bit rgba, interlaced": (raw_png(wide, 6, interlaced=True), to_8bit(wide))}


def test_png_decoder_matches_pillow(page, url):
    open_page(page, url)
    for name, (data, expected) in png_variants().items():
        got = decoded_by_page(page, data, "png")
        want = pillow_view(data) if expected is None else expected
        np.testing.assert_array_equal(got, want, err_msg=name)


def oriented_png(image: Image.Image, orientation: int, exif_after_pixels=False) -> bytes:
    """A PNG with an eXIf chunk (before IDAT, as Pillow writes it, or moved after it)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = png_bytes(image, exif=exif)
    if not exif_after_pixels:
        return data
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        chunks.append(data[pos:pos + 12 + length])
        pos += 12 + length
    (exif_chunk,) = [c for c in chunks if c[4:8] == b"eXIf"]
    rest = [c for c in chunks if c[4:8] != b"eXIf"]
    return data[:8] + b"".join(rest[:-1]) + exif_chunk + rest[-1]   # ... IDAT, eXIf, IEND


def png_with_text_orientation(image: Image.Image, xmp=None, xmp_zip=False, raw_exif=None,
                              exif=None) -> bytes:
    """A PNG whose orientation is in text chunks, as other programs write it: XMP
    (tiff:Orientation) and ImageMagick's hex 'Raw profile type exif', maybe with eXIf."""
    info = PngImagePlugin.PngInfo()
    if xmp is not None:
        info.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>'
                      '<rdf:Description tiff:Orientation="%d"/></rdf:RDF></x:xmpmeta>' % xmp,
                      zip=xmp_zip)
    if raw_exif is not None:
        tags = Image.Exif()
        tags[0x0112] = raw_exif
        hexed = tags.tobytes().hex()
        info.add_text("Raw profile type exif", f"\nexif\n{len(hexed) // 2:8d}\n" + "\n".join(
            hexed[i:i + 72] for i in range(0, len(hexed), 72)) + "\n", zip=True)
    extra = {"exif": exif} if exif is not None else {}
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=info, **extra)
    return buffer.getvalue()


def picture_rgba(path: Path) -> np.ndarray:
    """RGBA of sr.pictures.read_picture (8-bit pictures): what `main.py upscale` reads."""
    picture = read_picture(path)
    colour = picture.colour if not picture.grey else np.dstack([picture.colour] * 3)
    alpha = picture.alpha if picture.alpha is not None else np.full(colour.shape[:2], 255)
    return np.dstack([colour, alpha]).astype(np.uint8)


def test_png_exif_orientation_matches_read_picture(page, url, tmp_path):
    """All eight EXIF orientations, as Python's read_picture applies them, with the upright
    size given to the size check from the header."""
    open_page(page, url)
    rgba = fixture_picture(37, 29)
    cases = {f"orientation {o}": oriented_png(rgba, o) for o in range(1, 9)}
    cases["orientation 6 after IDAT"] = oriented_png(rgba, 6, exif_after_pixels=True)
    cases["orientation 7, rgb"] = oriented_png(rgba.convert("RGB"), 7)
    exif_3 = Image.Exif()
    exif_3[0x0112] = 3
    cases["xmp 6"] = png_with_text_orientation(rgba, xmp=6)
    cases["xmp 8, compressed"] = png_with_text_orientation(rgba, xmp=8, xmp_zip=True)
    cases["eXIf 3 before xmp 6"] = png_with_text_orientation(rgba, xmp=6, exif=exif_3)
    cases["raw exif 5"] = png_with_text_orientation(rgba, raw_exif=5)
    cases["raw exif 5 before xmp 6"] = png_with_text_orientation(rgba, xmp=6, raw_exif=5)
    plain = png_bytes(rgba)
    body = b"XML:com.adobe.xmp\0\0\0en"                   # cut off inside the language tag
    damaged = len(body).to_bytes(4, "big") + b"iTXt" + body + \
        zlib.crc32(b"iTXt" + body).to_bytes(4, "big")
    cases["damaged xmp"] = plain[:-12] + damaged + plain[-12:]   # before IEND
    expected = {"xmp 6": 6, "xmp 8, compressed": 8, "eXIf 3 before xmp 6": 3,
                "raw exif 5": 5, "raw exif 5 before xmp 6": 5, "damaged xmp": None}
    for name, orientation in expected.items():      # the files say what they should
        assert Image.open(io.BytesIO(cases[name])).getexif().get(0x0112) == orientation, name
    for name, data in cases.items():
        path = tmp_path / "oriented.png"
        path.write_bytes(data)
        checked, width, height, pixels = page.evaluate("""async (b64) => {
            const {decodeImage} = await import('./decode.js');
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            let checked = null;
            const img = await decodeImage(new Blob([bytes]), 'x.png',
                                          (w, h) => { checked = [w, h]; });
            let s = ''; for (const v of img.pixels) s += String.fromCharCode(v);
            return [checked, img.width, img.height, btoa(s)];
        }""", base64.b64encode(data).decode())
        want = picture_rgba(path)
        assert (height, width) == want.shape[:2] and checked == [width, height], name
        got = np.frombuffer(base64.b64decode(pixels), np.uint8).reshape(height, width, 4)
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_exif_oriented_png_upscale_matches_python_upscale(page, url, site, tmp_path):
    picture = tmp_path / "turned.png"
    picture.write_bytes(oriented_png(fixture_picture(41, 29), 6))
    want = np.asarray(python_upscale(picture, site["checkpoints"][2], 2, tmp_path / "python"))
    assert want.shape == (82, 58, 4)   # upright: 29 x 41 at x2
    open_page(page, url)
    assert upscale_on_page(page, picture, 2) == "done", page.inner_text("#status")
    got = np.asarray(downloaded_result(page))
    assert got.shape == want.shape
    share = fraction_within_one_level(got, want)
    assert share >= 0.999, f"only {share:.4%} of pixels within 1 level of main.py upscale"


def decoded_by_page(page, data: bytes, kind: str) -> np.ndarray:
    """decode.js's RGBA (H, W, 4) of a file of type image/<kind>."""
    width, height, pixels = page.evaluate("""async ([b64, kind]) => {
        const {decodeImage} = await import('./decode.js');
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const img = await decodeImage(new Blob([bytes], {type: `image/${kind}`}), `x.${kind}`);
        let s = ''; for (const v of img.pixels) s += String.fromCharCode(v);
        return [img.width, img.height, btoa(s)];
    }""", [base64.b64encode(data).decode(), kind])
    return np.frombuffer(base64.b64decode(pixels), np.uint8).reshape(height, width, 4)


def test_browser_jpeg_decoding_matches_pillow(page, url):
    """JPEG is decoded by the browser (no colour conversion): the same pixels as Pillow."""
    open_page(page, url)
    buffer = io.BytesIO()
    fixture_picture(45, 31).convert("RGB").save(buffer, "JPEG", quality=85)
    got = decoded_by_page(page, buffer.getvalue(), "jpeg")
    want = np.asarray(Image.open(buffer).convert("RGBA"))
    assert fraction_within_one_level(got, want) >= 0.999


def test_browser_decoding_keeps_the_colour_under_transparent_webp_pixels(page, url):
    """A translucent WebP is decoded by the browser but read back without the canvas's
    premultiplication: every byte as Pillow reads it, including the colour of fully
    transparent pixels (which bicubic enlargement spreads into their neighbours)."""
    open_page(page, url)
    rgba = np.asarray(fixture_picture(45, 31).convert("RGBA")).copy()
    rgba[..., 3] = np.random.default_rng(3).choice([0, 1, 77, 254, 255], rgba.shape[:2])
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "WEBP", lossless=True, exact=True)
    got = decoded_by_page(page, buffer.getvalue(), "webp")
    want = np.asarray(Image.open(buffer).convert("RGBA"))
    assert (want == rgba).all()                    # the file keeps the hidden colour
    assert (got == want).all(), f"{(got != want).any(axis=2).sum()} pixels differ"


def test_png_encoder_keeps_pixels_and_colour_profile(page, url):
    open_page(page, url)
    profile = b"an ICC profile, carried over unread" * 4
    source = png_bytes(fixture_picture(19, 11), icc_profile=profile)
    encoded = page.evaluate("""async (b64) => {
        const {decodePng, encodePng} = await import('./png.js');
        const img = await decodePng(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
        const blob = await encodePng(img.pixels, img.width, img.height, true, img.iccProfile);
        const bytes = new Uint8Array(await blob.arrayBuffer());
        let s = ''; for (const v of bytes) s += String.fromCharCode(v);
        return btoa(s);
    }""", base64.b64encode(source).decode())
    result = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert result.info.get("icc_profile") == profile
    np.testing.assert_array_equal(np.asarray(result), np.asarray(Image.open(io.BytesIO(source))))


@pytest.mark.parametrize("size, new_size, name", [
    ((37, 29), (74, 58), "BICUBIC"), ((37, 29), (111, 87), "BICUBIC"),
    ((13, 40), (52, 160), "BICUBIC"), ((37, 29), (37, 87), "BICUBIC"),
    ((50, 31), (23, 17), "BICUBIC"),
    ((148, 116), (111, 87), "BICUBIC"),   # shrinking: x4 -> x3 (the route's)
    ((20, 84), (15, 63), "BICUBIC"), ((20, 84), (26, 41), "BICUBIC"),   # vertical pass first
    ((74, 58), (56, 44), "LANCZOS"),   # x2 -> x1.5: upscale's shrink below x2
    ((37, 29), (74, 58), "LANCZOS"), ((50, 31), (23, 17), "LANCZOS"),
    ((20, 84), (15, 63), "LANCZOS")])
def test_resizing_matches_pillow_exactly(page, url, size, new_size, name):
    """resample.js against Pillow (pinned in requirements.txt), bicubic and Lanczos,
    enlarging and shrinking, pixel for pixel."""
    open_page(page, url)
    rgba = np.asarray(fixture_picture(*size))
    got = page.evaluate("""async ([b64, w, h, nw, nh, name]) => {
        const resample = await import('./resample.js');
        const src = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const out = resample.resize(src, w, h, nw, nh, resample[name]);
        let s = ''; for (const v of out) s += String.fromCharCode(v);
        return btoa(s);
    }""", [base64.b64encode(rgba.tobytes()).decode(), *size, *new_size, name])
    got = np.frombuffer(base64.b64decode(got), np.uint8).reshape(new_size[1], new_size[0], 4)
    # Python resizes RGB and alpha separately (no premultiplication): so does the page.
    image, resample = Image.fromarray(rgba, "RGBA"), getattr(Image, name)
    want_rgb = np.asarray(image.convert("RGB").resize(new_size, resample))
    want_alpha = np.asarray(image.getchannel("A").resize(new_size, resample))
    np.testing.assert_array_equal(got[..., :3], want_rgb)
    np.testing.assert_array_equal(got[..., 3], want_alpha)


def test_a_failed_model_session_is_tried_again(page, url, tmp_path):
    """The x3 session fails once (say, out of memory): the next x3 job creates it again
    rather than getting the same failure forever."""
    source = (WEB / "runtime.js").read_text()
    flaky = source.replace("async function createSession(ort, modelBytes, backend) {", """\
async function createSession(ort, modelBytes, backend) {
  if (++sessions === 2) throw new Error('no memory for this session, this once');""")
    assert flaky != source
    flaky = "let sessions = 0;\n" + flaky
    page.route("**/runtime.js", lambda route: route.fulfill(body=flaky,
                                                             content_type="text/javascript"))
    picture = tmp_path / "small.png"
    fixture_picture(23, 17).save(picture)
    open_page(page, url, "?backend=wasm")   # session 1: x2, when the worker starts
    assert upscale_on_page(page, picture, 3) == "error"
    assert "this once" in page.inner_text("#status")
    page.set_input_files("#file", str(picture))
    page.wait_for_selector("#status[data-state=done], #status[data-state=error]",
                           timeout=TIMEOUT_MS)
    assert page.get_attribute("#status", "data-state") == "done", page.inner_text("#status")


# ---- JPEG artifact levels ----

def jpeg_file(path: Path, image: Image.Image, **params) -> Path:
    image.save(path, "JPEG", **params)
    return path


def cli_upscale_by_level(picture: Path, models: Path, scale: int, out_dir: Path, capsys,
                         *flags: str) -> tuple[np.ndarray, str]:
    """`main.py upscale` choosing the model from --models by the file's JPEG level, as
    the page does: (its result as written, RGB or RGBA, and what it printed)."""
    main.main(["upscale", "-i", str(picture), "-o", str(out_dir), "--models", str(models),
               "--scale", str(scale), "--cpu", "--precision", "float32", "--format", "png",
               *flags])
    (result,) = out_dir.glob(f"{picture.stem}.*.png")
    return np.asarray(Image.open(result)), capsys.readouterr().out


def test_page_estimates_jpeg_quality_and_level_as_sr_jpeg(page, url):
    """jpeg.js reads the DQT tables from the file's bytes (zigzag order, 8- or 16-bit)
    and finds the same quality as sr.jpeg.estimate_quality; the level bounds come from
    models.json and give sr.jpeg.level_for_quality's levels."""
    open_page(page, url)
    picture = fixture_picture(24, 16).convert("RGB")
    own_tables = [list(np.random.default_rng(1).integers(1, 600, 64)),   # 16-bit entries
                  list(np.random.default_rng(2).integers(1, 200, 64))]
    files = {f"q{q}": (picture, {"quality": q}) for q in (20, 50, 75, 90, 98)}
    files.update({"grey q60": (picture.convert("L"), {"quality": 60}),
                  "4:4:4 q85": (picture, {"quality": 85, "subsampling": 0}),
                  "progressive q40": (picture, {"quality": 40, "progressive": True}),
                  "own tables": (picture, {"qtables": own_tables})})
    data, want = {}, {}
    for name, (image, params) in files.items():
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", **params)
        data[name] = base64.b64encode(buffer.getvalue()).decode()
        want[name] = estimate_quality(Image.open(buffer))
    data["png"], want["png"] = base64.b64encode(png_bytes(picture)).decode(), None
    got, levels = page.evaluate("""async (files) => {
        const {estimateQuality, levelForQuality, quantTables} = await import('./jpeg.js');
        const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const got = Object.fromEntries(Object.entries(files).map(
            ([name, b64]) => [name, estimateQuality(quantTables(bytes(b64)))]));
        const index = await (await fetch('models.json')).json();
        const qualities = [null, ...Array.from({length: 100}, (_, i) => i + 1)];
        return [got, [2, 1].map((scale) => qualities.map((q) => levelForQuality(
            q, index.levels, scale, index.x1_highest_quality)))];
    }""", data)
    assert got == want
    assert [want[f"q{q}"] for q in (20, 50, 75, 90, 98)] == [20, 50, 75, 90, 98]
    for scale, page_levels in zip((2, 1), levels):   # at x1, none above the x1 limit
        assert page_levels == [level_for_quality(q, scale) for q in [None, *range(1, 101)]]
    assert levels[1][93] == 0 and levels[0][93] == 1


def test_a_jpeg_gets_its_level_model_as_from_python_upscale(page, url, site, tmp_path,
                                                           capsys):
    picture = jpeg_file(tmp_path / "photo.jpg", fixture_picture(45, 31).convert("RGB"),
                        quality=75)
    want, said = cli_upscale_by_level(picture, site["models"], 2, tmp_path / "python", capsys)
    assert "photo.jpg: JPEG quality ≈ 75 -> x2 model for JPEG level 2" in said
    open_page(page, url)
    assert upscale_on_page(page, picture, 2) == "done", page.inner_text("#status")
    assert page.inner_text("#choice") == "JPEG quality ≈ 75 → x2 model for JPEG level 2"
    assert "srcnn_x2_jpeg2.onnx" in page.inner_text("#details")
    got = np.asarray(downloaded_result(page).convert("RGB"))
    assert got.shape == want.shape == (62, 90, 3)
    # the browser's JPEG decoder and Pillow's agree to a level (test above), so the
    # tolerance of the PNG tests holds (measured: every pixel identical, here and at x1)
    share = fraction_within_one_level(got, want)
    assert share >= 0.999, f"only {share:.4%} of pixels within 1 level of main.py upscale"


@pytest.mark.parametrize("scale, chosen", [(3, "x2 model for JPEG level 2, twice, shrunk to x3"),
                                           (4, "x2 model for JPEG level 2, twice")])
def test_a_jpeg_above_x2_routes_through_its_x2_model_as_python_upscale(page, url, site,
                                                                      tmp_path, capsys,
                                                                      scale, chosen):
    """No level-2 model of x3 or x4: its x2 model runs twice (x4), and x3 is that result
    shrunk with Pillow's bicubic; on the page as in main.py upscale."""
    picture = jpeg_file(tmp_path / "photo.jpg", fixture_picture(45, 31).convert("RGB"),
                        quality=75)
    want, said = cli_upscale_by_level(picture, site["models"], scale, tmp_path / "python",
                                      capsys)
    assert f"photo.jpg: JPEG quality ≈ 75 -> {chosen}" in said
    open_page(page, url)
    assert upscale_on_page(page, picture, scale) == "done", page.inner_text("#status")
    assert page.inner_text("#choice") == f"JPEG quality ≈ 75 → {chosen}"
    assert "srcnn_x2_jpeg2.onnx" in page.inner_text("#details")
    got = np.asarray(downloaded_result(page).convert("RGB"))
    assert got.shape == want.shape == (31 * scale, 45 * scale, 3)
    share = fraction_within_one_level(got, want)
    assert share >= 0.999, f"only {share:.4%} of pixels within 1 level of main.py upscale"
    clean, _ = cli_upscale_by_level(picture, site["models"], scale, tmp_path / "clean", capsys,
                                    "--denoise", "off")
    assert fraction_within_one_level(got, clean) < 0.9   # not the clean model of the scale


def test_x1_removes_jpeg_artifacts_and_refuses_a_png(page, url, site, tmp_path, capsys):
    picture = jpeg_file(tmp_path / "photo.jpg", fixture_picture(45, 31).convert("RGB"),
                        quality=75)
    want, _ = cli_upscale_by_level(picture, site["models"], 1, tmp_path / "python", capsys)
    open_page(page, url)
    assert upscale_on_page(page, picture, 1) == "done", page.inner_text("#status")
    assert "srcnn_x1_jpeg2.onnx" in page.inner_text("#details")
    got = np.asarray(downloaded_result(page).convert("RGB"))
    assert got.shape == want.shape == (31, 45, 3)
    share = fraction_within_one_level(got, want)
    assert share >= 0.999, f"only {share:.4%} of pixels within 1 level of main.py upscale"

    png = tmp_path / "drawing.png"
    fixture_picture(45, 31).save(png)
    assert upscale_on_page(page, png, 1) == "error"
    assert ("drawing.png: not a JPEG, so no JPEG artifacts to remove at x1"
            in page.inner_text("#status"))
    assert page.is_hidden("#output")
    faint = jpeg_file(tmp_path / "faint.jpg", fixture_picture(45, 31).convert("RGB"),
                      quality=95)   # above sr.jpeg.X1_HIGHEST_QUALITY, as upscale refuses
    assert upscale_on_page(page, faint, 1) == "error"
    assert ("faint.jpg: JPEG quality ≈ 95, so too few JPEG artifacts to remove at x1"
            in page.inner_text("#status"))


def test_the_jpeg_level_can_be_overridden_and_a_missing_level_falls_back(page, url,
                                                                         tmp_path):
    def rerun(choice: str) -> str:
        page.select_option("#denoise", choice)   # re-runs the last picture
        page.wait_for_selector("#status[data-state=done], #status[data-state=error]",
                               timeout=TIMEOUT_MS)
        return page.get_attribute("#status", "data-state")

    picture = jpeg_file(tmp_path / "photo.jpg", fixture_picture(45, 31).convert("RGB"),
                        quality=75)
    open_page(page, url)
    assert upscale_on_page(page, picture, 2) == "done"
    assert rerun("off") == "done"
    assert page.inner_text("#choice") == "JPEG artifacts off → x2 clean model"
    assert "srcnn.onnx" in page.inner_text("#details")
    assert rerun("3") == "error"   # chosen, so no fallback: as upscale --denoise 3
    assert "no x2 model for JPEG level 3" in page.inner_text("#status")
    assert rerun("2") == "done" and "srcnn_x2_jpeg2.onnx" in page.inner_text("#details")

    page.select_option("#denoise", "auto")
    rough = jpeg_file(tmp_path / "rough.jpg", fixture_picture(45, 31).convert("RGB"),
                      quality=30)
    assert upscale_on_page(page, rough, 2) == "done"
    assert (page.inner_text("#choice")
            == "JPEG quality ≈ 30 → x2 clean model (none for JPEG level 3)")


@pytest.fixture(scope="module")
def worst_url(tmp_path_factory):
    """A page with level 3 models for x1 and x2, a level 4 one for x1 and a clean x3 one
    (for the scale menu): JPEG level 4 runs the x1 one alone, and level 3's x1 model then
    level 3's route at x2 and x3."""
    site = make_site(tmp_path_factory.mktemp("worst"), [(1, 3, "9-1-5", (32, 16)),
                                                         (2, 3, "9-5-5", (32, 16)),
                                                         (1, 4, "9-1-5", (32, 16)),
                                                         (3, 0, "9-1-5", (16, 8))])
    for address in serving(site["root"], isolation=True):
        yield address, site["models"]


@pytest.mark.parametrize("scale, chosen", [
    (2, "JPEG level 4: the x1 model for level 3, then the x2 one"),
    (3, "JPEG level 4: the x1 model for level 3, then the x2 one twice, shrunk to x3"),
    (1, "x1 model for JPEG level 4")])
def test_the_worst_jpegs_get_level_4_as_from_python_upscale(page, worst_url, tmp_path,
                                                            capsys, scale, chosen):
    """Level 4 (quality 20 and below): its own model of the scale (x1 here), else level
    3's x1 model at the picture's size, then level 3's of the scale: on the page as in
    main.py upscale."""
    address, models = worst_url
    picture = jpeg_file(tmp_path / "photo.jpg", fixture_picture(45, 31).convert("RGB"),
                        quality=12)
    want, said = cli_upscale_by_level(picture, models, scale, tmp_path / "python", capsys)
    assert f"JPEG quality ≈ 12 -> {chosen}" in said
    open_page(page, address)
    assert upscale_on_page(page, picture, scale) == "done", page.inner_text("#status")
    assert page.inner_text("#choice") == f"JPEG quality ≈ 12 → {chosen}"
    got = np.asarray(downloaded_result(page).convert("RGB"))
    assert got.shape == want.shape
    share = fraction_within_one_level(got, want)
    assert share >= 0.999, f"only {share:.4%} of pixels within 1 level of main.py upscale"
    one_pass, _ = cli_upscale_by_level(picture, models, scale, tmp_path / "one", capsys,
                                       "--denoise", "3")
    assert fraction_within_one_level(got, one_pass) < 0.9   # not level 3's model alone
