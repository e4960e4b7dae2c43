// Bicubic and Lanczos resizing exactly as Pillow's Image.resize for 8-bit images
// (libImaging/Resample.c), so the page interpolates like sr/imaging.py. Separable: a
// horizontal and a vertical pass (in Pillow's order, see resize), each rounded to 8 bits.
// Kernels: cubic convolution with a = -0.5 (support 2 input pixels) and Lanczos-3 (3),
// pixel centres aligned, the support times the reduction factor when shrinking; taps
// outside the image dropped and the rest renormalised. Weights are fixed point with 22
// fractional bits, as in Pillow, so the result is bit-identical (JS numbers hold these
// integer sums exactly). No maintained JS library reproduces Pillow's filters (canvas
// scaling differs); tests/test_web.py checks this one against Pillow pixel for pixel.

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);

function bicubic(x) {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

const sinc = (x) => (x === 0 ? 1 : Math.sin(x * Math.PI) / (x * Math.PI));
export const BICUBIC = {support: 2, kernel: bicubic};
export const LANCZOS = {support: 3, kernel: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0)};

// Per output position: the first input index, the tap count and the fixed-point
// weights. Returns {first: Int32Array(outSize), count: Int32Array(outSize), ksize: taps
// at most (5 when enlarging), weights: Int32Array(outSize * ksize), 0 past each count}.
export function coefficients(inSize, outSize, filter) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const raw = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);   // C's (int) truncates
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let sum = 0;
    for (let x = 0; x < n; x++) {
      raw[x] = filter.kernel((x + xmin - center + 0.5) * (1 / filterScale));   // Pillow's ss
      sum += raw[x];
    }
    for (let x = 0; x < n; x++) {
      const w = sum !== 0 ? raw[x] / sum : raw[x];
      weights[xx * ksize + x] = Math.trunc(w < 0 ? w * ONE - 0.5 : w * ONE + 0.5);
    }
    first[xx] = xmin;
    count[xx] = n;
  }
  return {first, count, weights, ksize};
}

// Fixed-point sum -> 8 bits: arithmetic shift (floor), then clip, as Pillow's clip8.
// Sums fit in 32 bits (they do in Pillow's C ints), so `>>` is exact here.
function clip8(sum) {
  const v = sum >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

// One pass along RGBA rows, (height, srcWidth, 4) -> (height, dstWidth, 4), the four
// sums in locals (about 3x faster than a loop over the channels).
function resampleRows(src, srcWidth, height, dstWidth, coeffs) {
  const dst = new Uint8Array(dstWidth * height * 4);
  const {first, count, weights, ksize} = coeffs;
  for (let y = 0; y < height; y++) {
    const rowIn = y * srcWidth * 4;
    let o = y * dstWidth * 4;
    for (let xx = 0; xx < dstWidth; xx++) {
      let r = HALF, g = HALF, b = HALF, a = HALF;
      const k0 = xx * ksize;
      let i = rowIn + first[xx] * 4;
      for (let t = 0; t < count[xx]; t++, i += 4) {
        const w = weights[k0 + t];
        r += src[i] * w;
        g += src[i + 1] * w;
        b += src[i + 2] * w;
        a += src[i + 3] * w;
      }
      dst[o++] = clip8(r);
      dst[o++] = clip8(g);
      dst[o++] = clip8(b);
      dst[o++] = clip8(a);
    }
  }
  return dst;
}

// One pass along RGBA columns, (srcHeight, width, 4) -> (dstHeight, width, 4).
function resampleColumns(src, width, dstHeight, coeffs) {
  if (coeffs.ksize === 5) return resampleColumns5(src, width, dstHeight, coeffs);
  const rowLength = width * 4;
  const dst = new Uint8Array(rowLength * dstHeight);
  const {first, count, weights, ksize} = coeffs;
  const acc = new Float64Array(rowLength);
  for (let yy = 0; yy < dstHeight; yy++) {
    acc.fill(HALF);
    for (let t = 0; t < count[yy]; t++) {   // whole rows at a time: cache friendly
      const w = weights[yy * ksize + t];
      const row = (first[yy] + t) * rowLength;
      for (let i = 0; i < rowLength; i++) acc[i] += src[row + i] * w;
    }
    const o = yy * rowLength;
    for (let i = 0; i < rowLength; i++) dst[o + i] = clip8(acc[i]);
  }
  return dst;
}

// Enlarging (5 taps): the taps in locals, unused ones given weight 0 on a valid row.
// About 2x faster than the loop over the taps above.
function resampleColumns5(src, width, dstHeight, coeffs) {
  const rowLength = width * 4;
  const dst = new Uint8Array(rowLength * dstHeight);
  const {first, count, weights} = coeffs;
  const rows = [0, 0, 0, 0, 0];
  const ws = [0, 0, 0, 0, 0];
  for (let yy = 0; yy < dstHeight; yy++) {
    for (let t = 0; t < 5; t++) {
      rows[t] = (first[yy] + (t < count[yy] ? t : 0)) * rowLength;
      ws[t] = weights[yy * 5 + t];   // 0 past count[yy]: coefficients writes only used taps
    }
    const [r0, r1, r2, r3, r4] = rows;
    const [w0, w1, w2, w3, w4] = ws;
    const o = yy * rowLength;
    for (let i = 0; i < rowLength; i++) {
      dst[o + i] = clip8(HALF + src[r0 + i] * w0 + src[r1 + i] * w1 + src[r2 + i] * w2
                         + src[r3 + i] * w3 + src[r4 + i] * w4);
    }
  }
  return dst;
}

// Resize interleaved 8-bit RGBA pixels, (height, width, 4) -> (newHeight, newWidth, 4),
// like Pillow 13 (requirements.txt): a pass is skipped when its size is unchanged, and
// the horizontal one comes first unless the height shrinks by more than twice as many
// pixels as the width.
export function resize(pixels, width, height, newWidth, newHeight, filter = BICUBIC) {
  const rows = (src, h) => newWidth === width ? src
    : resampleRows(src, width, h, newWidth, coefficients(width, newWidth, filter));
  const columns = (src, w) => newHeight === height ? src
    : resampleColumns(src, w, newHeight, coefficients(height, newHeight, filter));
  const out = height - newHeight > Math.max(0, 2 * (width - newWidth))
    ? rows(columns(pixels, width), newHeight) : columns(rows(pixels, height), newWidth);
  return out === pixels ? pixels.slice() : out;
}
