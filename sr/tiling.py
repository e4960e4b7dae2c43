"""Running the network over a large picture in tiles, exactly.

Every output tile is computed from its input window plus a halo of r pixels (r = the
network's receptive radius), with valid convolutions; pixels beyond the picture's edge
are its mirror image about the edge pixel (like padding the whole picture once by r in
numpy's or PyTorch's "reflect" mode; it measured better than repeating the edge pixel:
bench/padding.py).  So each output pixel sees exactly the pixels it would see in one
whole-picture pass, and every step of the per-tile work (colour conversion, network,
rounding) is a per-pixel computation: tiled output == untiled output, byte for byte
(tests/test_upscale_tiling.py).

Tiles keep memory bounded: only one window per worker is ever converted to float
and run through the network, whatever the picture's size.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

# About 1.2 KB of activations per output pixel for 64 + 32 float32 channels
# (and convolution scratch); 512 x 512 tiles keep one forward pass near 300 MB.
DEFAULT_TILE = 512

# Tile side for ONNX Runtime on the CPU: 96..512 measure within about 10% of
# each other (bench/upscale.py --tiles); at 256 the halo adds 3% (9-1-5) to 6%
# (9-5-5) to the first layer's work, and a 1080p picture still has dozens of tiles
# to share between the cores.  Activations: about 20 MB per tile in flight.
CPU_TILE = 256

# GPU: activations of 64 + 32 float16 channels plus cuDNN's workspace, per pixel.
GPU_BYTES_PER_PIXEL = 600


def tile_side(height: int, width: int, tile: int) -> int:
    """The side tile_boxes uses: tile (at least 1), or the whole plane for 0."""
    return max(1, int(tile)) if tile else max(height, width)


def tile_boxes(height: int, width: int, tile: int):
    """Yield (top, bottom, left, right) boxes of at most tile x tile covering the plane."""
    tile = tile_side(height, width, tile)
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            yield top, min(top + tile, height), left, min(left + tile, width)


def count_tiles(height: int, width: int, tile: int) -> int:
    """len(list(tile_boxes(...))), by arithmetic: counting them one by one would take
    forever for a huge result."""
    tile = tile_side(height, width, tile)
    return -(-height // tile) * -(-width // tile)


def auto_tile(device: str = "cpu", free_bytes: int | None = None) -> int:
    """Tile side for --tile 0: cache-sized on the CPU, a quarter of free memory on a GPU."""
    if not str(device).startswith("cuda") or not free_bytes:
        return CPU_TILE
    side = int((free_bytes / 4 / GPU_BYTES_PER_PIXEL) ** 0.5)
    return max(256, min(4096, side - side % 64))


def mirror_index(index: np.ndarray, size: int) -> np.ndarray:
    """Positions outside 0..size-1 reflected back in about the end pixels, as many
    times as needed (numpy's "reflect": -1 -> 1, size -> size - 2)."""
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    index = np.abs(index) % period
    return np.where(index >= size, period - index, index)


def halo_window(image: np.ndarray, box, r: int) -> np.ndarray:
    """The box of image (H, W[, C]) grown by r on every side, mirrored beyond the
    picture's edges: (bottom - top + 2r, right - left + 2r[, C])."""
    top, bottom, left, right = box
    height, width = image.shape[:2]
    if top >= r and left >= r and bottom + r <= height and right + r <= width:
        return image[top - r:bottom + r, left - r:right + r]       # a view, no copy
    rows = mirror_index(np.arange(top - r, bottom + r), height)
    cols = mirror_index(np.arange(left - r, right + r), width)
    return image[rows][:, cols]


def map_tiles(runner, image: np.ndarray, out: np.ndarray, tile: int, to_luma, from_luma,
              on_tile=None) -> np.ndarray:
    """Refine image tile by tile into out (same height and width).

    to_luma(window) -> (luma (h + 2r, w + 2r) float32 in [0, 1], extra): the colour
        conversion of a window; extra is anything from_luma needs (e.g. YCbCr).
    from_luma(refined (h, w), extra cropped to the tile centre) -> output pixels.
    runner: see sr/inference.py; runner.workers tiles run at once, in threads
        (NumPy and ONNX Runtime release the GIL while they compute)."""
    r = runner.radius
    height, width = image.shape[:2]

    def one_tile(box):
        top, bottom, left, right = box
        luma, extra = to_luma(halo_window(image, box, r))
        refined = runner(luma)                                        # (h, w)
        out[top:bottom, left:right] = from_luma(refined, extra[r:r + bottom - top,
                                                               r:r + right - left])

    boxes = list(tile_boxes(height, width, tile))
    workers = min(getattr(runner, "workers", 1), len(boxes))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="tile") if workers > 1 else None
    results = pool.map(one_tile, boxes) if pool else map(one_tile, boxes)
    try:
        for _ in results:
            if on_tile is not None:
                on_tile()
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
    return out

