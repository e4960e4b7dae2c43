// Picture file -> RGBA pixels, as Pillow would read it for `main.py upscale`.
// PNG goes through png.js (fast-png: exact, see there). Other formats (JPEG, WebP, GIF,
// BMP...) are decoded by the browser without colour conversion and with EXIF orientation
// applied, as sr/pictures.read_picture does; they are read back through a canvas, which
// is exact for opaque pixels. A 2D canvas stores premultiplied alpha, so translucent
// pictures are read again through WebGL: a texture uploaded without premultiplication
// and read through a framebuffer returns the decoded bytes unchanged, colour under
// transparent pixels included (where WebGL is missing, the canvas's pixels are kept and
// that colour can differ from Python's).

import {isPng, decodePng} from './png.js';
import {UserError} from './errors.js';

// -> {width, height, pixels: Uint8Array (height, width, 4) RGBA, hasAlpha,
//     iccProfile (PNG only: the iCCP chunk to write into the result, or null),
//     grey (PNG only: a grey or grey+alpha file, whose result is written grey)}
// checkSize(width, height), if given, may throw to refuse the picture by its size
// before its pixels are unpacked (from a PNG's header, upright; for other formats once
// the browser has decoded it, before the copy into an array).
export async function decodeImage(blob, name, checkSize = null) {
  const head = new Uint8Array(await blob.slice(0, 8).arrayBuffer());
  try {
    // decodePng gives null for the few PNGs fast-png cannot unpack: the browser's then
    const png = isPng(head) && decodePng(new Uint8Array(await blob.arrayBuffer()), checkSize);
    return png || await decodeWithBrowser(blob, checkSize);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${name}: ${e.message}`);
    throw e;
  }
}

async function decodeWithBrowser(blob, checkSize) {
  const bitmap = await createImageBitmap(blob, {
    colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image',
  }).catch(() => {
    throw new UserError('not a readable image (the browser cannot decode it)');
  });
  const {width, height} = bitmap;
  try {
    checkSize?.(width, height);
    // through a 2D canvas: premultiplied and back, exact where alpha is 255
    const canvas = new OffscreenCanvas(width, height);
    const context = canvas.getContext('2d', {willReadFrequently: true});
    context.drawImage(bitmap, 0, 0);
    let pixels = new Uint8Array(context.getImageData(0, 0, width, height).data.buffer);
    let hasAlpha = false;
    for (let i = 3; i < pixels.length && !hasAlpha; i += 4) hasAlpha = pixels[i] !== 255;
    if (hasAlpha) pixels = readWithWebGl(bitmap) ?? pixels;
    return {width, height, pixels, hasAlpha, grey: false, iccProfile: null};
  } finally {
    bitmap.close();
  }
}

// ImageBitmap (premultiplyAlpha: 'none') -> Uint8Array (height, width, 4) RGBA as
// decoded, or null where WebGL 2 is missing or the picture exceeds its texture size.
function readWithWebGl(bitmap) {
  const {width, height} = bitmap;
  const gl = new OffscreenCanvas(1, 1).getContext('webgl2');
  if (!gl) return null;
  try {
    if (Math.max(width, height) > gl.getParameter(gl.MAX_TEXTURE_SIZE)) return null;
    gl.bindTexture(gl.TEXTURE_2D, gl.createTexture());
    gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
    gl.pixelStorei(gl.UNPACK_COLORSPACE_CONVERSION_WEBGL, gl.NONE);
    gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, false);       // row 0 stays the top row
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, width, height, 0, gl.RGBA, gl.UNSIGNED_BYTE, bitmap);
    gl.bindFramebuffer(gl.FRAMEBUFFER, gl.createFramebuffer());
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D,
                            gl.getParameter(gl.TEXTURE_BINDING_2D), 0);
    if (gl.checkFramebufferStatus(gl.FRAMEBUFFER) !== gl.FRAMEBUFFER_COMPLETE) return null;
    const pixels = new Uint8Array(width * height * 4);
    gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
    return gl.getError() === gl.NO_ERROR ? pixels : null;
  } catch (e) {
    return null;                    // e.g. no memory for the texture: keep the canvas's pixels
  } finally {
    gl.getExtension('WEBGL_lose_context')?.loseContext();   // browsers cap live contexts
  }
}
