// Picture file -> RGBA pixels, as Pillow would read it for `main.py upscale`.
//
// PNG goes through png.js (exact, alpha unpremultiplied, no colour management, its
// eXIf orientation applied as sr/pictures.py does).
// Other formats (JPEG, WebP, GIF, BMP...) are decoded by the browser without colour
// conversion and with EXIF orientation applied, as sr/pictures.read_picture does; they
// are read back through a canvas, which is exact for opaque pixels. (For translucent
// non-PNG pictures the canvas premultiplies alpha: colour under transparent pixels
// is lost, so results near transparency can differ from Python.)

import {isPng, decodePng} from './png.js';
import {UserError} from './errors.js';

// -> {width, height, pixels: Uint8Array (height, width, 4) RGBA, hasAlpha, decoder,
//     iccProfile (PNG only: the iCCP chunk to write into the result, or null),
//     grey (PNG only: a grey or grey+alpha file, whose result is written grey)}
// checkSize(width, height), if given, may throw to refuse the picture by its size
// before its pixels are unpacked (from a PNG's header, upright; for other formats once
// the browser has decoded it, before the copy into an array).
export async function decodeImage(blob, name, checkSize = null) {
  const head = new Uint8Array(await blob.slice(0, 8).arrayBuffer());
  try {
    if (isPng(head)) {
      const bytes = new Uint8Array(await blob.arrayBuffer());
      return {...await decodePng(bytes, checkSize), decoder: 'png.js'};
    }
    return await decodeWithBrowser(blob, checkSize);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${name}: ${e.message}`);
    throw e;
  }
}

async function decodeWithBrowser(blob, checkSize) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, {
      colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image',
    });
  } catch (e) {
    throw new UserError('not a readable image (the browser cannot decode it)');
  }
  const {width, height} = bitmap;
  try {
    checkSize?.(width, height);
  } catch (e) {
    bitmap.close();
    throw e;
  }
  const context = new OffscreenCanvas(width, height).getContext('2d', {willReadFrequently: true});
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const pixels = new Uint8Array(context.getImageData(0, 0, width, height).data.buffer);
  let hasAlpha = false;
  for (let i = 3; i < pixels.length; i += 4) {
    if (pixels[i] !== 255) { hasAlpha = true; break; }
  }
  return {width, height, pixels, hasAlpha, grey: false, decoder: 'browser', iccProfile: null};
}
