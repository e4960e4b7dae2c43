// Reading an ONNX file's metadata_props in the browser.
//
// onnxruntime-web does not expose a model's metadata_props, and the page must learn
// the scale, receptive radius and colour space from the file rather than hard-coding
// them. An ONNX file is a protobuf ModelProto; its field 14 is the repeated
// metadata_props, each a StringStringEntryProto {1: key, 2: value}. This walks the
// top level of the message and skips everything else (the graph, weights...).

const METADATA_PROPS = 14;

// Varint at pos -> [value, next pos]. Values above 2^53 lose precision, which is
// harmless: only field tags and lengths are used.
function readVarint(bytes, pos) {
  let value = 0;
  let factor = 1;
  for (;;) {
    if (pos >= bytes.length) throw new Error('truncated protobuf');
    const b = bytes[pos++];
    value += (b & 0x7f) * factor;
    if (b < 0x80) return [value, pos];
    factor *= 128;
  }
}

// Calls visit(field, wireType, start, end) for each field of the message in bytes[from, to);
// for length-delimited fields start..end is the payload.
function forEachField(bytes, from, to, visit) {
  let pos = from;
  while (pos < to) {
    const [tag, afterTag] = readVarint(bytes, pos);
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    let start = afterTag;
    let end;
    if (wire === 0) end = readVarint(bytes, afterTag)[1];
    else if (wire === 1) end = afterTag + 8;
    else if (wire === 5) end = afterTag + 4;
    else if (wire === 2) {
      const [length, afterLength] = readVarint(bytes, afterTag);
      start = afterLength;
      end = afterLength + length;
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
    if (end > to) throw new Error('truncated protobuf');
    visit(field, wire, start, end);
    pos = end;
  }
}

// ONNX file bytes (Uint8Array) -> {key: value} of its metadata_props.
export function readMetadataProps(bytes) {
  const text = new TextDecoder();
  const props = {};
  forEachField(bytes, 0, bytes.length, (field, wire, start, end) => {
    if (field !== METADATA_PROPS || wire !== 2) return;
    let key = '';
    let value = '';
    forEachField(bytes, start, end, (f, w, s, e) => {
      if (f === 1 && w === 2) key = text.decode(bytes.subarray(s, e));
      if (f === 2 && w === 2) value = text.decode(bytes.subarray(s, e));
    });
    props[key] = value;
  });
  return props;
}
