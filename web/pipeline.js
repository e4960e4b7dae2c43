// The colour and tiling maths of sr/imaging.py, sr/upscaling.py and sr/tiling.py, in JS.
//
// Colour: ITU-R BT.601 "studio swing" YCbCr on 0..255 (MATLAB's rgb2ycbcr):
//   Y  =  16 + ( 65.481 R + 128.553 G +  24.966 B) / 255
//   Cb = 128 + (-37.797 R -  74.203 G + 112.0   B) / 255
//   Cr = 128 + (112.0   R -  93.786 G -  18.214 B) / 255
// The network sees Y / 255 of the bicubic picture and returns the refined Y / 255;
// Cb and Cr stay as interpolated; alpha is interpolated only.
//
// Tiles: the luma plane is padded once by the model's receptive radius r, mirrored
// about its edge pixels ("reflect", as sr/tiling.py). Each output tile (h, w) is
// computed from the padded window of (h + 2r, w + 2r). The ONNX model pads its input
// by r again and returns the same shape, so the centre (h, w) of its output, cropped
// by r on each side, is exactly what one whole-image pass gives for those pixels.

const Y_FROM_RGB = [65.481 / 255, 128.553 / 255, 24.966 / 255];
const CB_FROM_RGB = [-37.797 / 255, -74.203 / 255, 112.0 / 255];
const CR_FROM_RGB = [112.0 / 255, -93.786 / 255, -18.214 / 255];

// Inverse of the matrix above (rows R, G, B; columns Y-16, Cb-128, Cr-128), computed
// once from it rather than typed in, so forward and inverse agree to rounding.
const RGB_FROM_YCBCR = invert3([Y_FROM_RGB, CB_FROM_RGB, CR_FROM_RGB]);

function invert3(m) {
  const [[a, b, c], [d, e, f], [g, h, i]] = m;
  const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  return [
    [(e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det],
    [(f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det],
    [(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det],
  ];
}

// Round to nearest, ties to even, as numpy's rint and Python's round().
function roundHalfEven(v) {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;   // Math.round sends ties up
}

function toByte(v) {
  return Math.min(Math.max(roundHalfEven(v), 0), 255);
}

// Python's round() for the output size, at least 1 pixel a side.
export function outputSize(width, height, scale) {
  const side = (v) => Math.max(1, roundHalfEven(v * scale));
  return {width: side(width), height: side(height)};
}

// A position outside 0..size-1 reflected back in about the end pixels, as often as
// needed (-1 -> 1, size -> size - 2), like sr/tiling.py's mirror_index.
export function mirrorIndex(i, size) {
  if (size === 1) return 0;
  const period = 2 * (size - 1);
  const m = Math.abs(i) % period;
  return m >= size ? period - m : m;
}

// RGBA bytes, (height, width, 4) -> luma / 255 as float32, padded by r on every side
// with the mirror image of the picture: (height + 2r, width + 2r).
export function paddedLuma(pixels, width, height, r) {
  const pw = width + 2 * r;
  const ph = height + 2 * r;
  const out = new Float32Array(pw * ph);
  const [ky, kg, kb] = Y_FROM_RGB;
  const cols = Int32Array.from({length: pw}, (_, x) => mirrorIndex(x - r, width));
  for (let y = 0; y < ph; y++) {
    const row = mirrorIndex(y - r, height) * width;
    for (let x = 0; x < pw; x++) {
      const i = (row + cols[x]) * 4;
      out[y * pw + x] = (16 + ky * pixels[i] + kg * pixels[i + 1] + kb * pixels[i + 2]) / 255;
    }
  }
  return out;
}

// Output tiles of at most tile x tile covering (height, width), row by row, as
// {top, left, h, w}, like sr/tiling.py's tile_boxes.
export function tileBoxes(height, width, tile) {
  const boxes = [];
  for (let top = 0; top < height; top += tile) {
    for (let left = 0; left < width; left += tile) {
      boxes.push({top, left, h: Math.min(tile, height - top), w: Math.min(tile, width - left)});
    }
  }
  return boxes;
}

// The network's input for one tile: the (h + 2r, w + 2r) window of the padded plane
// whose centre is the tile. padded: (height + 2r, width + 2r), row-major.
export function tileInput(padded, paddedWidth, box, r) {
  const tw = box.w + 2 * r;
  const th = box.h + 2 * r;
  const out = new Float32Array(tw * th);
  for (let y = 0; y < th; y++) {
    const start = (box.top + y) * paddedWidth + box.left;
    out.set(padded.subarray(start, start + tw), y * tw);
  }
  return out;
}

// Write one refined tile into the picture, in place. pixels: the bicubic picture,
// (height, width, 4); netOut: the network's (h + 2r, w + 2r) output for the
// tile, of which the centre is used. Each pixel's chroma is taken from its bicubic
// RGB before that pixel is overwritten; the luma plane was computed beforehand.
export function composeTile(pixels, width, box, netOut, r) {
  const tw = box.w + 2 * r;
  const [cb0, cb1, cb2] = CB_FROM_RGB;
  const [cr0, cr1, cr2] = CR_FROM_RGB;
  const [[rY, rCb, rCr], [gY, gCb, gCr], [bY, bCb, bCr]] = RGB_FROM_YCBCR;
  for (let y = 0; y < box.h; y++) {
    let i = ((box.top + y) * width + box.left) * 4;
    let o = (y + r) * tw + r;
    for (let x = 0; x < box.w; x++, i += 4, o++) {
      const R = pixels[i], G = pixels[i + 1], B = pixels[i + 2];
      const cb = cb0 * R + cb1 * G + cb2 * B;   // Cb - 128
      const cr = cr0 * R + cr1 * G + cr2 * B;   // Cr - 128
      const yy = netOut[o] * 255 - 16;          // refined Y - 16
      pixels[i] = toByte(rY * yy + rCb * cb + rCr * cr);
      pixels[i + 1] = toByte(gY * yy + gCb * cb + gCr * cr);
      pixels[i + 2] = toByte(bY * yy + bCb * cb + bCr * cr);
    }
  }
}

// One of the 8 rotations and mirror images of a (height, width) plane, as
// sr/inference.py's SelfEnsemble makes them: `turns` quarter turns anticlockwise
// (numpy's rot90), then mirrored left to right. -> {from, height, width}: the turned
// plane's pixel i is the plane's pixel from[i].
export function turnIndices(height, width, turns, mirror) {
  const [oh, ow] = turns % 2 === 1 ? [width, height] : [height, width];
  const from = new Int32Array(height * width);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const j = mirror ? ow - 1 - x : x;   // column before the mirror
      let sy, sx;                          // where rot90^turns takes (y, j) from
      if (turns === 0) { sy = y; sx = j; }
      else if (turns === 1) { sy = j; sx = width - 1 - y; }
      else if (turns === 2) { sy = height - 1 - y; sx = width - 1 - j; }
      else { sy = height - 1 - j; sx = y; }
      from[y * ow + x] = sy * width + sx;
    }
  }
  return {from, height: oh, width: ow};
}

// x8 self-ensemble of one network window (height, width): run(data, height, width)
// resolves to the network's output of that shape; the 8 outputs are turned back
// and averaged in double precision, like SelfEnsemble. 8x the work.
export async function selfEnsemble(run, window, height, width) {
  const sum = new Float64Array(window.length);
  for (let turns = 0; turns < 4; turns++) {
    for (const mirror of [false, true]) {
      const {from, height: h, width: w} = turnIndices(height, width, turns, mirror);
      const out = await run(Float32Array.from(from, (i) => window[i]), h, w);
      for (let i = 0; i < out.length; i++) sum[from[i]] += out[i];   // turned back
    }
  }
  return Float32Array.from(sum, (v) => v / 8);
}
