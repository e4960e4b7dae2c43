// A JPEG's quality, read from its quantisation tables, and its artifact level: the
// algorithm of sr/jpeg.py (estimate_quality, level_for_quality), so that the page
// picks the model `main.py upscale` picks.
// The DQT walk stays hand-written (about 20 lines): the browser's decoder does not
// expose the tables, and a maintained npm JPEG decoder (such as jpeg-js) would decode
// the whole picture, which the page does not need, to reach them (not measured); the
// estimate is checked against sr.jpeg.estimate_quality in tests/test_web.py.

// ITU-T T.81 Annex K tables, natural (row-major) order, as sr/jpeg.py's.
const STD_LUMA = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
  14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
  18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
  49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99];
const STD_CHROMA = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
  24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99, ...Array(32).fill(99)];
// ZIGZAG[i]: where natural position i is stored in a DQT segment (Pillow's zigzag_index).
const ZIGZAG = [0, 1, 5, 6, 14, 15, 27, 28, 2, 4, 7, 13, 16, 26, 29, 42,
  3, 8, 12, 17, 25, 30, 41, 43, 9, 11, 18, 24, 31, 40, 44, 53,
  10, 19, 23, 32, 39, 45, 52, 54, 20, 22, 33, 38, 46, 51, 55, 60,
  21, 34, 37, 47, 50, 56, 59, 61, 35, 36, 48, 49, 57, 58, 62, 63];

// libjpeg's quality scaling of a standard table (baseline: 1..255), as logarithms.
function logTable(std, quality) {
  const scale = quality < 50 ? Math.floor(5000 / quality) : 200 - 2 * quality;
  return std.map((v) => Math.log(Math.min(Math.max(Math.floor((v * scale + 50) / 100), 1), 255)));
}
const LOG_TABLES = Array.from({length: 100}, (_, i) =>
  [logTable(STD_LUMA, i + 1), logTable(STD_CHROMA, i + 1)]);

// File bytes -> {table id: 64 entries in natural order} from the DQT segments before
// the first scan, as Pillow reads them; null if not a JPEG or its header is damaged.
export function quantTables(bytes) {
  if (bytes[0] !== 0xFF || bytes[1] !== 0xD8) return null;
  const tables = {};
  let at = 2;
  while (at + 4 <= bytes.length && bytes[at] === 0xFF) {
    const marker = bytes[at + 1];
    if (marker === 0xFF) { at++; continue; }   // fill byte
    if (marker === 0xDA || marker === 0xD9) break;   // start of scan, end of image
    const end = at + 2 + (bytes[at + 2] << 8 | bytes[at + 3]);
    if (end > bytes.length) return null;
    for (let s = at + 4; marker === 0xDB && s < end;) {   // one segment, several tables
      const wide = bytes[s] >> 4 ? 2 : 1;                 // 8- or 16-bit entries
      if (s + 1 + 64 * wide > end) return null;
      const stored = (i) => (wide === 1 ? bytes[s + 1 + i]
        : bytes[s + 1 + 2 * i] << 8 | bytes[s + 2 + 2 * i]);
      tables[bytes[s] & 15] = ZIGZAG.map(stored);
      s += 1 + 64 * wide;
    }
    at = end;
  }
  return tables;
}

// Tables -> the libjpeg quality 1..100 whose standard tables are nearest (least mean
// squared difference of the logarithms, over luma table 0 and chroma table 1 if
// there is one; ties to the highest quality), or null without a table 0.
export function estimateQuality(tables) {
  if (!tables || !tables[0]) return null;
  const got = [tables[0], tables[1]].filter(Boolean)
    .map((t) => t.map((v) => Math.log(Math.max(v, 1))));
  let best = null;
  let least = Infinity;
  for (let quality = 100; quality >= 1; quality--) {   // strictly less: ties to the highest
    let sum = 0;
    for (let k = 0; k < got.length; k++) {
      for (let i = 0; i < 64; i++) sum += (LOG_TABLES[quality - 1][k][i] - got[k][i]) ** 2;
    }
    if (sum < least) [least, best] = [sum, quality];   // the sum ranks as the mean does
  }
  return best;
}

// levels: models.json's [[level, lowest quality], ...] (sr.jpeg.LEVELS, highest
// quality first). A quality -> its artifact level; null (not a JPEG) -> 0, and at
// scale 1 so is a quality above x1Highest (models.json's x1_highest_quality), which
// the x1 models would only harm: sr.jpeg.level_for_quality's rule.
export function levelForQuality(quality, levels, scale = 2, x1Highest = 100) {
  if (quality === null || (scale === 1 && quality > x1Highest)) return 0;
  return levels.find(([, low]) => quality >= low)[0];
}
