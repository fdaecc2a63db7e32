/**
 * A minimal ONNX protobuf writer: just the messages an intent graph needs (ModelProto, GraphProto, NodeProto,
 * AttributeProto, TensorProto, ValueInfoProto), encoded by hand in the protobuf wire format. Field numbers follow
 * onnx/onnx.proto (IR version 8); they are listed next to each writer so the encoding can be checked against it.
 * Writing ~150 lines beats carrying a protobuf runtime and a schema compiler for a handful of messages.
 */

/** onnx.proto TensorProto.DataType */
export const DataType = { FLOAT: 1, INT32: 6, INT64: 7, STRING: 8, BOOL: 9 } as const;
type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** onnx.proto AttributeProto.AttributeType */
const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

const WIRE_VARINT = 0;
const WIRE_LEN = 2;
const WIRE_32 = 5;

/** Appends protobuf fields to a growing list of chunks. */
class Writer {
  private chunks: Uint8Array[] = [];
  private size = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.size += bytes.length;
  }

  private varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value)); // negative int64 → two's complement, 10 bytes, as protobuf wants
    const out: number[] = [];
    while (v >= 0x80n) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
    this.push(Uint8Array.from(out));
  }

  private tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, value: number | bigint): this {
    this.tag(field, WIRE_VARINT);
    this.varint(value);
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, WIRE_32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WIRE_LEN);
    this.varint(value.length);
    this.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, w: Writer): this {
    return this.bytes(field, w.finish());
  }

  packedInts(field: number, values: ArrayLike<number | bigint>): this {
    const inner = new Writer();
    for (let i = 0; i < values.length; i++) inner.varint(values[i]!);
    return this.bytes(field, inner.finish());
  }

  packedFloats(field: number, values: ArrayLike<number>): this {
    const f32 = Float32Array.from(values as ArrayLike<number>);
    return this.bytes(field, new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength));
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

export type TensorInit =
  | { name: string; type: 'float'; dims: number[]; data: Float32Array | number[] }
  | { name: string; type: 'int64'; dims: number[]; data: ArrayLike<number | bigint> }
  | { name: string; type: 'string'; dims: number[]; data: string[] };

/** TensorProto: dims=1, data_type=2, string_data=6, name=8, raw_data=9 (little-endian, used for numbers). */
function tensor(t: TensorInit): Writer {
  const w = new Writer();
  w.packedInts(1, t.dims);
  if (t.type === 'float') {
    w.int(2, DataType.FLOAT).string(8, t.name);
    const f32 = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
    w.bytes(9, new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength));
  } else if (t.type === 'int64') {
    w.int(2, DataType.INT64).string(8, t.name);
    const i64 = new BigInt64Array(t.data.length);
    for (let i = 0; i < t.data.length; i++) i64[i] = BigInt(t.data[i]!);
    w.bytes(9, new Uint8Array(i64.buffer));
  } else {
    w.int(2, DataType.STRING);
    for (const s of t.data) w.string(6, s);
    w.string(8, t.name);
  }
  return w;
}

export type AttrValue =
  | { f: number }
  | { i: number }
  | { s: string }
  | { t: TensorInit }
  | { floats: ArrayLike<number> }
  | { ints: ArrayLike<number | bigint> }
  | { strings: string[] };

/** AttributeProto: name=1, f=2, i=3, s=4, t=5, floats=7, ints=8, strings=9, type=20. */
function attribute(name: string, v: AttrValue): Writer {
  const w = new Writer().string(1, name);
  if ('f' in v) w.float(2, v.f).int(20, AttrType.FLOAT);
  else if ('i' in v) w.int(3, v.i).int(20, AttrType.INT);
  else if ('s' in v) w.string(4, v.s).int(20, AttrType.STRING);
  else if ('t' in v) w.message(5, tensor(v.t)).int(20, AttrType.TENSOR);
  else if ('floats' in v) w.packedFloats(7, v.floats).int(20, AttrType.FLOATS);
  else if ('ints' in v) w.packedInts(8, v.ints).int(20, AttrType.INTS);
  else {
    for (const s of v.strings) w.string(9, s);
    w.int(20, AttrType.STRINGS);
  }
  return w;
}

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attrs?: Record<string, AttrValue>;
}

/** NodeProto: input=1, output=2, name=3, op_type=4, attribute=5, domain=7. */
function node(n: NodeSpec, index: number): Writer {
  const w = new Writer();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name ?? `${n.op}_${index}`).string(4, n.op);
  for (const [k, v] of Object.entries(n.attrs ?? {})) w.message(5, attribute(k, v));
  if (n.domain) w.string(7, n.domain);
  return w;
}

export interface ValueSpec {
  name: string;
  type: 'float' | 'int64' | 'string';
  /** A number is a fixed size, a string a symbolic (dynamic) dimension. */
  shape: (number | string)[];
}

const TYPE_CODE: Record<ValueSpec['type'], DataTypeCode> = { float: DataType.FLOAT, int64: DataType.INT64, string: DataType.STRING };

/** ValueInfoProto{name=1, type=2} → TypeProto{tensor_type=1} → Tensor{elem_type=1, shape=2} → Dimension{dim_value=1, dim_param=2}. */
function valueInfo(v: ValueSpec): Writer {
  const shape = new Writer();
  for (const d of v.shape) shape.message(1, typeof d === 'number' ? new Writer().int(1, d) : new Writer().string(2, d));
  const tensorType = new Writer().int(1, TYPE_CODE[v.type]).message(2, shape);
  return new Writer().string(1, v.name).message(2, new Writer().message(1, tensorType));
}

export interface ModelSpec {
  graphName: string;
  nodes: NodeSpec[];
  initializers: TensorInit[];
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  /** domain ('' = ai.onnx) → opset version */
  opsets: Record<string, number>;
  producer: { name: string; version: string };
  docString?: string;
  metadata?: Record<string, string>;
}

/**
 * ModelProto: ir_version=1, producer_name=2, producer_version=3, doc_string=6, graph=7, opset_import=8,
 * metadata_props=14. GraphProto: node=1, name=2, initializer=5, input=11, output=12.
 */
export function encodeModel(m: ModelSpec): Uint8Array {
  const graph = new Writer();
  m.nodes.forEach((n, i) => graph.message(1, node(n, i)));
  graph.string(2, m.graphName);
  for (const t of m.initializers) graph.message(5, tensor(t));
  for (const i of m.inputs) graph.message(11, valueInfo(i));
  for (const o of m.outputs) graph.message(12, valueInfo(o));

  const model = new Writer().int(1, 8).string(2, m.producer.name).string(3, m.producer.version);
  if (m.docString) model.string(6, m.docString);
  model.message(7, graph);
  for (const [domain, version] of Object.entries(m.opsets)) {
    model.message(8, new Writer().string(1, domain).int(2, version));
  }
  for (const [key, value] of Object.entries(m.metadata ?? {})) {
    model.message(14, new Writer().string(1, key).string(2, value));
  }
  return model.finish();
}
