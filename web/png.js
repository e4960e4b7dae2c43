// PNG through fast-png (npm, served from node_modules), adapted to what `main.py
// upscale` reads with Pillow. The browser's decoder would premultiply alpha (losing
// the colour under transparent pixels) and convert colours; Pillow does neither, and
// fast-png gives the samples as they are. This adds what Pillow does and fast-png
// does not: the orientation (eXIf, ImageMagick's raw EXIF text, XMP), alpha only where
// Pillow keeps it, 8 bits per sample, and the ICC profile copied to the result.
// fast-png imports 'fflate' and 'iobuffer' by bare name, which index.html's import
// map resolves; module workers have no import maps, so this runs in the page.
// The chunk walk below stays: fast-png 8.0.0 reads only iCCP and tEXt, not eXIf, zTXt or
// iTXt, where Pillow finds the orientation, and writes no iCCP (the input's is copied).

import {convertIndexedToRgb, decode, encode, hasPngSignature} from 'fast-png';
import {unzlibSync} from 'fflate';
import {UserError} from './errors.js';

export const isPng = hasPngSignature;

// The chunks fast-png does not read, found by walking the file: {width, height,
// interlaced, depth (bits per sample), iccChunk (the whole iCCP chunk, CRC included,
// to copy into the result), exif (the last eXIf body: Pillow reads one after the
// pixels too), rawExif and xmp (the last text chunks Pillow takes an orientation from
// when eXIf has none), end: where the last whole chunk ends, ended: IEND was found}.
function readChunks(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const found = {width: 0, height: 0, iccChunk: null, exif: null, rawExif: null, xmp: null,
                 data: false, ended: false};
  let pos = 8;
  while (pos + 8 <= bytes.length && !found.ended) {
    const length = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    if (pos + 12 + length > bytes.length) {
      throw new UserError('damaged PNG: the file is truncated');
    }
    const body = bytes.subarray(pos + 8, pos + 8 + length);
    if (type === 'IHDR' && length >= 13) {
      Object.assign(found, {width: view.getUint32(pos + 8), height: view.getUint32(pos + 12),
                            depth: body[8], interlaced: body[12] === 1});
    } else if (type === 'iCCP') found.iccChunk = bytes.slice(pos, pos + 12 + length);
    else if (type === 'eXIf') found.exif = body;
    else if (['tEXt', 'zTXt', 'iTXt'].includes(type)) {
      const keyword = String.fromCharCode(...body.subarray(0, Math.max(0, body.indexOf(0))));
      if (keyword === 'Raw profile type exif') found.rawExif = {type, body};
      else if (keyword === 'XML:com.adobe.xmp' && type === 'iTXt') found.xmp = {type, body};
    } else if (type === 'IDAT') found.data = true;
    else if (type === 'IEND') found.ended = true;
    pos += 12 + length;   // length, type, body, CRC
  }
  if (!found.width || !found.height || !found.data) {
    throw new UserError('damaged PNG: no image header or no image data');
  }
  return {...found, end: pos};
}

// The file up to its last whole chunk, with an IEND chunk after it: fast-png wants
// one, Pillow reads a file that has image data but no IEND.
function withIend(bytes, end) {
  const IEND = [0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82];
  const whole = new Uint8Array(end + IEND.length);
  whole.set(bytes.subarray(0, end));
  whole.set(IEND, end);
  return whole;
}

// ---- orientation ----

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
function pngOrientation(chunks) {
  let exif = chunks.exif;
  if (!exif && chunks.rawExif) exif = rawProfileBytes(chunkText(chunks.rawExif));
  const fromExif = exif ? exifOrientation(exif) : null;
  if (fromExif !== null) return fromExif;
  const match = chunks.xmp && /tiff:Orientation(="|>)([0-9])/.exec(chunkText(chunks.xmp));
  return match ? Number(match[2]) : 1;
}

const MAX_TEXT_BYTES = 1 << 20;   // Pillow's MAX_TEXT_CHUNK: larger text is not read

// A text chunk's text as latin-1 characters (the patterns looked for are ASCII), or ''
// if it is damaged or too large: tEXt keyword\0 text; zTXt keyword\0 method zlib-text;
// iTXt keyword\0 flag method language\0 translated\0 text (zlib if flag is 1).
function chunkText({type, body}) {
  let compressed = type === 'zTXt';
  let pos = body.indexOf(0) + (compressed ? 2 : 1);   // past the keyword (and zTXt's method)
  if (type === 'iTXt') {
    compressed = body[pos] === 1;
    pos = body.indexOf(0, pos + 2) + 1;            // past the language tag
    pos = pos && body.indexOf(0, pos) + 1;         // past the translated keyword
    if (!pos) return '';
  }
  try {
    const text = compressed ? unzlibSync(body.subarray(pos)) : body.subarray(pos);
    return text.length > MAX_TEXT_BYTES ? '' : new TextDecoder('latin1').decode(text);
  } catch {
    return '';   // damaged zlib data
  }
}

// 'Raw profile type exif' text ("\nexif\n  <length>\n<hex lines>") -> EXIF bytes, as
// Pillow decodes it (the lines from the fourth on, joined); null if it is not hex.
function rawProfileBytes(text) {
  const hex = text.split('\n').slice(3).join('');
  if (hex.length % 2 || /[^0-9a-fA-F]/.test(hex)) return null;
  return Uint8Array.from(hex.match(/../g) || [], (h) => parseInt(h, 16));
}

// RGBA pixels (h, w, 4) -> {pixels, width, height} upright for EXIF orientation 2..8,
// as Pillow's ImageOps.exif_transpose turns them. The upright pixel (x, y) comes from
// index start + x * dx + y * dy; orientations 5..8 swap the sides.
function applyOrientation(pixels, w, h, orientation) {
  const [start, dx, dy] = {2: [w - 1, -1, w], 3: [w * h - 1, -1, -w], 4: [(h - 1) * w, 1, -w],
                           5: [0, w, 1], 6: [(h - 1) * w, -w, 1], 7: [w * h - 1, -w, -1],
                           8: [w - 1, w, -1]}[orientation];
  const [ow, oh] = orientation >= 5 ? [h, w] : [w, h];
  const src = new Uint32Array(pixels.buffer, pixels.byteOffset, w * h);
  const out = new Uint32Array(w * h);
  for (let y = 0, o = 0; y < oh; y++) {
    for (let x = 0, i = start + y * dy; x < ow; x++, i += dx) out[o++] = src[i];
  }
  return {pixels: new Uint8Array(out.buffer), width: ow, height: oh};
}

// ---- samples to RGBA ----

// fast-png's decoded picture -> RGBA (height, width, 4), as Pillow reads it: palettes
// through their colours (alpha from tRNS, which fast-png appends to the entries),
// 16-bit samples rounded (v / 257, as sr/pictures.to_8bit), 1/2/4-bit grey (rows
// packed) stretched to 0..255; tRNS on grey or RGB ignored, as sr/upscaling.py does.
function toRgba(png) {
  let {width, height, channels, depth, data} = png;
  if (png.palette) [data, channels, depth] = [convertIndexedToRgb(png), png.palette[0].length, 8];
  const mask = (1 << depth) - 1;
  const stride = Math.ceil((width * depth) / 8);   // bytes per row of 1/2/4-bit grey
  const sample = depth === 8 ? (x, y, c) => data[(y * width + x) * channels + c]
    : depth === 16 ? (x, y, c) => Math.floor((data[(y * width + x) * channels + c] * 255
                                              + 32767) / 65535)
    : (x, y) => ((data[y * stride + ((x * depth) >> 3)] >> (8 - depth - ((x * depth) & 7)))
                 & mask) * (255 / mask);
  // the sample each of R, G, B, A takes (-1: opaque) for grey, grey+alpha, RGB, RGBA
  const picks = [[0, 0, 0, -1], [0, 0, 0, 1], [0, 1, 2, -1], [0, 1, 2, 3]][channels - 1];
  const out = new Uint8Array(width * height * 4);
  for (let y = 0, o = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (const c of picks) out[o++] = c < 0 ? 255 : sample(x, y, c);
    }
  }
  return {pixels: out, hasAlpha: channels === 2 || channels === 4};
}

// PNG bytes -> {width, height, pixels: Uint8Array (height, width, 4) RGBA, hasAlpha
// (RGBA, grey+alpha or palette+tRNS: an alpha channel kept, as in Python), grey (written
// back grey), iccProfile (the iCCP chunk, for encodePng), orientation}, upright, as
// `main.py upscale` reads it; null for an interlaced PNG of 1, 2 or 4 bits per sample,
// which fast-png 8.0.0 unpacks wrongly. checkSize(width, height), if given, sees the
// upright size from the header and may throw before any pixel is unpacked.
export function decodePng(bytes, checkSize = null) {
  const chunks = readChunks(bytes);
  if (chunks.interlaced && chunks.depth < 8) return null;
  const found = pngOrientation(chunks);
  const orientation = found >= 2 && found <= 8 ? found : 1;   // Pillow turns only 2..8
  const swap = orientation >= 5;
  checkSize?.(swap ? chunks.height : chunks.width, swap ? chunks.width : chunks.height);
  let png;
  try {
    png = decode(chunks.ended ? bytes : withIend(bytes, chunks.end));
  } catch (e) {
    throw new UserError(`damaged PNG: ${e.message}`);
  }
  const {pixels, hasAlpha} = toRgba(png);
  const grey = !png.palette && png.channels <= 2;
  const upright = orientation > 1 ? applyOrientation(pixels, png.width, png.height, orientation)
    : {pixels, width: png.width, height: png.height};
  return {...upright, hasAlpha, grey, iccProfile: chunks.iccChunk, orientation};
}

// RGBA pixels (height, width, 4) -> PNG Blob, 8 bits per sample, by fast-png: RGBA
// when withAlpha, else RGB; for a grey picture (R = G = B) grey or grey+alpha, as
// `main.py upscale` writes it. iccProfile: decodePng's iCCP chunk, copied in after
// the header chunk, where PNG wants it (fast-png writes no iCCP itself).
export function encodePng(pixels, width, height, withAlpha, iccProfile = null, grey = false) {
  const picks = grey ? (withAlpha ? [0, 3] : [0]) : (withAlpha ? [0, 1, 2, 3] : [0, 1, 2]);
  let data = pixels;
  if (picks.length < 4) {
    data = new Uint8Array(width * height * picks.length);
    for (let i = 0, o = 0; i < pixels.length; i += 4) {
      for (const c of picks) data[o++] = pixels[i + c];
    }
  }
  const png = encode({width, height, data, channels: picks.length, depth: 8});
  const afterHeader = 8 + 25;   // the signature and the IHDR chunk
  const parts = iccProfile ? [png.subarray(0, afterHeader), iccProfile, png.subarray(afterHeader)]
    : [png];
  return new Blob(parts, {type: 'image/png'});
}
