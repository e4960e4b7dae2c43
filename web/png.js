// PNG decoding and encoding without a canvas.
//
// Why not let the browser decode: a 2D canvas stores premultiplied alpha, so reading
// a picture back through one changes the colour under translucent pixels (and zeroes
// it under transparent ones), and browsers apply gamma/ICC colour conversion. Pillow
// does neither, and the page must match `main.py upscale`. So PNG (the lossless
// format people upscale most) is decoded here exactly as Pillow reads it, and the
// result is encoded here from the unpremultiplied pixels. The orientation Pillow finds
// (eXIf chunk, ImageMagick's raw EXIF text, XMP) is applied, as sr/pictures.py applies
// it. Inflate/deflate are the browser's own DecompressionStream / CompressionStream
// ("deflate" = zlib format, which is what PNG stores).

import {UserError} from './errors.js';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

// Adam7 passes: [xStart, yStart, xStep, yStep].
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4],
               [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];

// Samples per pixel for each PNG colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA).
const SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4};

export function isPng(bytes) {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

function readUint32(bytes, pos) {
  return ((bytes[pos] << 24) >>> 0) + (bytes[pos + 1] << 16) + (bytes[pos + 2] << 8) + bytes[pos + 3];
}

// Chunks of the file: {header, palette, transparency, iccProfile, exif, rawExif, xmp,
// data: [Uint8Array...]}. iccProfile is the iCCP chunk's body as it is (name, method,
// compressed profile); exif the last eXIf chunk's body, before or after the image data
// (Pillow reads the ones after it on load(), and a later one replaces an earlier one);
// rawExif and xmp the last text chunks (type and body) that Pillow reads an orientation
// from when there is no eXIf orientation: ImageMagick's 'Raw profile type exif' and XMP.
function readChunks(bytes) {
  const found = {header: null, palette: null, transparency: null, iccProfile: null, exif: null,
                 rawExif: null, xmp: null, data: []};
  let pos = 8;
  while (pos + 8 <= bytes.length) {
    const length = readUint32(bytes, pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const body = bytes.subarray(pos + 8, pos + 8 + length);
    if (body.length !== length) throw new UserError('damaged PNG: the file is truncated');
    if (type === 'IHDR') found.header = readHeader(body);
    else if (type === 'PLTE') found.palette = body;
    else if (type === 'tRNS') found.transparency = body;
    else if (type === 'iCCP') found.iccProfile = body.slice();
    else if (type === 'eXIf') found.exif = body;
    else if (TEXT_CHUNKS.includes(type)) {
      const keyword = textKeyword(body);
      if (keyword === 'Raw profile type exif') found.rawExif = {type, body};
      else if (keyword === 'XML:com.adobe.xmp' && type === 'iTXt') found.xmp = {type, body};
    }
    else if (type === 'IDAT') found.data.push(body);
    else if (type === 'IEND') return found;
    pos += 12 + length;   // length, type, body, CRC
  }
  if (!found.header || !found.data.length) throw new UserError('damaged PNG: the file is truncated');
  return found;   // no IEND: tolerated when the image data is there, as Pillow does
}

// The EXIF orientation (tag 0x0112 of IFD0) in EXIF bytes, or null if there is none.
// Read as Pillow reads it (sr/pictures.py applies it): 'Exif\0\0' prefixes skipped, II or
// MM byte order, the first 0x0112 entry, the first value of a (signed) SHORT or LONG.
// Damaged EXIF counts as no orientation (Pillow refuses a bad header, keeps what it
// read of a truncated directory).
export function exifOrientation(exif) {
  let data = exif;
  const prefix = [0x45, 0x78, 0x69, 0x66, 0, 0];   // 'Exif\0\0'
  while (data.length >= 6 && prefix.every((b, i) => data[i] === b)) data = data.subarray(6);
  if (data.length < 8) return null;
  const order = String.fromCharCode(data[0], data[1]);
  if (order !== 'II' && order !== 'MM') return null;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const little = order === 'II';
  const ifd = view.getUint32(4, little);
  if (ifd + 2 > data.length) return null;
  const count = view.getUint16(ifd, little);
  for (let i = 0, pos = ifd + 2; i < count && pos + 12 <= data.length; i++, pos += 12) {
    if (view.getUint16(pos, little) !== 0x0112) continue;
    const type = view.getUint16(pos + 2, little);
    const size = {3: 2, 8: 2, 4: 4, 9: 4}[type];   // SHORT, SSHORT, LONG, SLONG
    const n = view.getUint32(pos + 4, little);
    if (!size || n === 0) return null;
    const at = size * n > 4 ? view.getUint32(pos + 8, little) : pos + 8;
    if (at + size * n > data.length) return null;
    return type === 3 ? view.getUint16(at, little) : type === 8 ? view.getInt16(at, little)
      : type === 4 ? view.getUint32(at, little) : view.getInt32(at, little);
  }
  return null;
}

// The orientation Pillow's getexif() gives a PNG, 1 if none: the eXIf chunk's, else
// that of ImageMagick's hex 'Raw profile type exif' text (used only without eXIf);
// where those have no orientation tag, the first tiff:Orientation digit in the XMP.
async function pngOrientation(png) {
  let exif = png.exif;
  if (!exif && png.rawExif) exif = rawProfileBytes(await chunkText(png.rawExif));
  const fromExif = exif ? exifOrientation(exif) : null;
  if (fromExif !== null) return fromExif;
  const match = png.xmp && /tiff:Orientation(="|>)([0-9])/.exec(await chunkText(png.xmp));
  return match ? Number(match[2]) : 1;
}

// ---- text chunks (only for the orientation) ----

const TEXT_CHUNKS = ['tEXt', 'zTXt', 'iTXt'];
const MAX_TEXT_BYTES = 1 << 20;   // Pillow's MAX_TEXT_CHUNK: larger text is not read

function textKeyword(body) {
  const end = body.indexOf(0);
  return end > 0 ? String.fromCharCode(...body.subarray(0, end)) : '';
}

// A text chunk's text as latin-1 characters (the patterns looked for are ASCII), or ''
// if it is damaged or too large: tEXt keyword\0 text; zTXt keyword\0 method zlib-text;
// iTXt keyword\0 flag method language\0 translated\0 text (zlib if flag is 1).
async function chunkText({type, body}) {
  let pos = body.indexOf(0) + 1;
  let compressed = type === 'zTXt';
  if (type === 'zTXt') pos += 1;
  if (type === 'iTXt') {
    compressed = body[pos] === 1;
    pos = body.indexOf(0, pos + 2) + 1;            // past the language tag
    pos = pos && body.indexOf(0, pos) + 1;         // past the translated keyword
    if (!pos) return '';
  }
  let text = body.subarray(pos);
  if (compressed) {
    try {
      text = await inflate([text]);
    } catch (e) {
      return '';
    }
  }
  if (text.length > MAX_TEXT_BYTES) return '';
  let s = '';
  for (let i = 0; i < text.length; i += 8192) s += String.fromCharCode(...text.subarray(i, i + 8192));
  return s;
}

// 'Raw profile type exif' text ("\nexif\n  <length>\n<hex lines>") -> EXIF bytes, as
// Pillow decodes it (the lines from the fourth on, joined); null if it is not hex.
function rawProfileBytes(text) {
  const hex = text.split('\n').slice(3).join('');
  if (hex.length % 2 || /[^0-9a-fA-F]/.test(hex)) return null;
  return Uint8Array.from(hex.match(/../g) || [], (h) => parseInt(h, 16));
}

// Where an upright pixel comes from, for EXIF orientations 2..8 (Pillow's
// ImageOps.exif_transpose): source index = start + x * dx + y * dy for the upright
// pixel (x, y) of a w x h picture; swap: the upright picture is h x w.
function orientationMap(orientation, w, h) {
  return {
    2: {start: w - 1, dx: -1, dy: w},
    3: {start: w * h - 1, dx: -1, dy: -w},
    4: {start: (h - 1) * w, dx: 1, dy: -w},
    5: {start: 0, dx: w, dy: 1, swap: true},
    6: {start: (h - 1) * w, dx: -w, dy: 1, swap: true},
    7: {start: w * h - 1, dx: -w, dy: -1, swap: true},
    8: {start: w - 1, dx: w, dy: -1, swap: true},
  }[orientation] || null;
}

// RGBA pixels (h, w, 4) turned upright by map -> {pixels, width, height}.
function applyOrientation(pixels, w, h, map) {
  const [ow, oh] = map.swap ? [h, w] : [w, h];
  const src = new Uint32Array(pixels.buffer, pixels.byteOffset, w * h);
  const out = new Uint32Array(w * h);
  for (let y = 0, o = 0; y < oh; y++) {
    for (let x = 0, i = map.start + y * map.dy; x < ow; x++, i += map.dx) out[o++] = src[i];
  }
  return {pixels: new Uint8Array(out.buffer), width: ow, height: oh};
}

function readHeader(body) {
  const header = {
    width: readUint32(body, 0), height: readUint32(body, 4), bitDepth: body[8],
    colourType: body[9], interlaced: body[12] === 1,
  };
  const okDepths = {0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]};
  if (!(okDepths[header.colourType] || []).includes(header.bitDepth)) {
    throw new UserError(`unsupported PNG (colour type ${header.colourType}, ${header.bitDepth} bits)`);
  }
  if (!header.width || !header.height) throw new UserError('damaged PNG: empty image');
  return header;
}

async function inflate(parts) {
  const stream = new Blob(parts).stream().pipeThrough(new DecompressionStream('deflate'));
  try {
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (e) {
    throw new UserError('damaged PNG: its compressed data does not inflate');
  }
}

function paeth(a, b, c) {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

// Undo the per-row filters of one (sub)image in place: data[pos] holds `rows`
// scanlines of 1 filter byte + `stride` bytes. Returns the raw rows, (rows, stride).
function unfilter(data, pos, rows, stride, bpp) {
  const out = new Uint8Array(rows * stride);
  for (let y = 0; y < rows; y++, pos += stride + 1) {
    if (pos + stride + 1 > data.length) throw new UserError('damaged PNG: image data is missing');
    const filter = data[pos];
    const line = data.subarray(pos + 1, pos + 1 + stride);
    const o = y * stride;
    const up = o - stride;   // previous row in out (negative index on row 0: treated as 0)
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? out[o + x - bpp] : 0;
      const b = y > 0 ? out[up + x] : 0;
      const c = x >= bpp && y > 0 ? out[up + x - bpp] : 0;
      let v = line[x];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) v += paeth(a, b, c);
      else if (filter !== 0) throw new UserError(`damaged PNG: unknown row filter ${filter}`);
      out[o + x] = v;   // Uint8Array keeps the low 8 bits, as PNG's arithmetic wants
    }
  }
  return {raw: out, next: pos};
}

// A function (raw, rowStart, x) -> the x-th sample of a row on 8 bits: 16-bit samples
// rounded (v / 257, as sr/pictures.to_8bit; the page works in 8 bits), 1/2/4-bit grey
// stretched to 0..255 as Pillow does, palette indices returned as they are.
function sampleReader(bitDepth, isPalette) {
  if (bitDepth === 8) return (raw, row, i) => raw[row + i];
  if (bitDepth === 16) {
    return (raw, row, i) => Math.floor(((raw[row + 2 * i] * 256 + raw[row + 2 * i + 1]) * 255
                                        + 32767) / 65535);
  }
  const perByte = 8 / bitDepth;
  const mask = (1 << bitDepth) - 1;
  const stretch = isPalette ? 1 : 255 / mask;
  return (raw, row, i) => {
    const byte = raw[row + Math.floor(i / perByte)];
    const shift = 8 - bitDepth * (i % perByte + 1);
    return ((byte >> shift) & mask) * stretch;
  };
}

// Write one (sub)image's raw rows into the RGBA output. Alpha comes from the file's
// alpha channel or, for palette images only, from tRNS (Pillow ignores tRNS on grey
// and RGB pictures when upscaling: sr/upscaling.py keeps alpha for RGBA/LA/P+tRNS).
function expandPixels(raw, stride, w, h, png, out, place) {
  const {colourType, bitDepth} = png.header;
  const samples = SAMPLES[colourType];
  const read = sampleReader(bitDepth, colourType === 3);
  const palette = png.palette || new Uint8Array(0);
  const alphaTable = png.transparency || new Uint8Array(0);
  for (let y = 0; y < h; y++) {
    const row = y * stride;
    for (let x = 0; x < w; x++) {
      const o = place(x, y) * 4;
      const s = x * samples;
      if (colourType === 3) {
        const index = read(raw, row, s);
        out[o] = palette[3 * index] || 0;
        out[o + 1] = palette[3 * index + 1] || 0;
        out[o + 2] = palette[3 * index + 2] || 0;
        out[o + 3] = index < alphaTable.length ? alphaTable[index] : 255;
      } else if (colourType === 0 || colourType === 4) {
        out[o] = out[o + 1] = out[o + 2] = read(raw, row, s);
        out[o + 3] = colourType === 4 ? read(raw, row, s + 1) : 255;
      } else {
        out[o] = read(raw, row, s);
        out[o + 1] = read(raw, row, s + 1);
        out[o + 2] = read(raw, row, s + 2);
        out[o + 3] = colourType === 6 ? read(raw, row, s + 3) : 255;
      }
    }
  }
}

// PNG bytes -> {width, height, pixels: Uint8Array (height, width, 4) RGBA, hasAlpha,
// iccProfile, orientation}: upright, the orientation (pngOrientation) applied as
// `main.py upscale` does (width and height are the upright ones, for checkSize too).
// hasAlpha says whether the file has transparency (RGBA, grey+alpha,
// palette+tRNS), which decides, as in Python, whether the result keeps an alpha
// channel. Colour values are not converted: the ICC profile, if any, is handed on
// to the result file, as `main.py upscale` does.
export async function decodePng(bytes, checkSize = null) {
  const png = readChunks(bytes);
  const {width, height, bitDepth, colourType, interlaced} = png.header;
  const orientation = await pngOrientation(png);
  const turn = orientationMap(orientation, width, height);
  // the upright size, from the header: before inflating or allocating anything
  checkSize?.(turn?.swap ? height : width, turn?.swap ? width : height);
  if (colourType === 3 && !png.palette) throw new UserError('damaged PNG: palette missing');
  const bitsPerPixel = SAMPLES[colourType] * bitDepth;
  const bpp = Math.max(1, bitsPerPixel >> 3);
  const data = await inflate(png.data);
  const pixels = new Uint8Array(width * height * 4);
  const passes = interlaced ? ADAM7 : [[0, 0, 1, 1]];
  let pos = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const w = Math.ceil((width - x0) / dx);
    const h = Math.ceil((height - y0) / dy);
    if (w <= 0 || h <= 0) continue;
    const stride = Math.ceil((w * bitsPerPixel) / 8);
    const {raw, next} = unfilter(data, pos, h, stride, bpp);
    pos = next;
    expandPixels(raw, stride, w, h, png, pixels, (x, y) => (y0 + y * dy) * width + x0 + x * dx);
  }
  const hasAlpha = colourType === 4 || colourType === 6 || (colourType === 3 && !!png.transparency);
  const grey = colourType === 0 || colourType === 4;   // written back as grey, as in Python
  const upright = turn ? applyOrientation(pixels, width, height, turn) : {pixels, width, height};
  return {...upright, hasAlpha, grey, iccProfile: png.iccProfile, orientation};
}

// ---- encoding ----

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(parts) {
  let c = 0xffffffff;
  for (const bytes of parts) {
    for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

function uint32Bytes(v) {
  return new Uint8Array([v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255]);
}

function chunk(type, body) {
  const typeBytes = new TextEncoder().encode(type);
  return [uint32Bytes(body.length), typeBytes, body, uint32Bytes(crc32([typeBytes, body]))];
}

// Rows [y0, y1) of the picture, each as filter byte 1 ("Sub": difference to the pixel
// on the left, good for photographs) + the row's bytes. pixels: (height, width, 4);
// picks: which of R, G, B, A (0..3) each written pixel holds, e.g. [0, 3] for grey+alpha.
function filteredRows(pixels, width, picks, y0, y1) {
  const stride = width * picks.length;
  const out = new Uint8Array((y1 - y0) * (stride + 1));
  let o = 0;
  for (let y = y0; y < y1; y++) {
    out[o++] = 1;
    const row = y * width * 4;
    for (let x = 0; x < width; x++) {
      for (const c of picks) {
        const i = row + x * 4 + c;
        out[o++] = pixels[i] - (x > 0 ? pixels[i - 4] : 0);   // wraps mod 256
      }
    }
  }
  return out;
}

// RGBA pixels (height, width, 4) -> PNG Blob, 8 bits per sample: RGBA when withAlpha,
// else RGB; grey (R = G = B, from a grey PNG): grey or grey+alpha, as `main.py upscale`
// writes a grey picture. iccProfile: an iCCP chunk body from decodePng, written back
// unchanged (or null).
export async function encodePng(pixels, width, height, withAlpha, iccProfile = null,
                                grey = false) {
  const picks = grey ? (withAlpha ? [0, 3] : [0]) : (withAlpha ? [0, 1, 2, 3] : [0, 1, 2]);
  const colourType = (grey ? 0 : 2) + (withAlpha ? 4 : 0);   // 0, 4, 2 or 6
  const channels = picks.length;
  const header = new Uint8Array(13);
  header.set(uint32Bytes(width), 0);
  header.set(uint32Bytes(height), 4);
  header.set([8, colourType, 0, 0, 0], 8);
  const compressor = new CompressionStream('deflate');
  const writer = compressor.writable.getWriter();
  const compressed = new Response(compressor.readable).arrayBuffer();
  const rowsPerWrite = Math.max(1, Math.floor((1 << 22) / (width * channels)));
  for (let y = 0; y < height; y += rowsPerWrite) {   // a few MB at a time, not all at once
    await writer.write(filteredRows(pixels, width, picks, y, Math.min(height, y + rowsPerWrite)));
  }
  await writer.close();
  const data = new Uint8Array(await compressed);
  const profile = iccProfile ? chunk('iCCP', iccProfile) : [];
  return new Blob([new Uint8Array(SIGNATURE), ...chunk('IHDR', header), ...profile,
                   ...chunk('IDAT', data), ...chunk('IEND', new Uint8Array(0))],
                  {type: 'image/png'});
}
