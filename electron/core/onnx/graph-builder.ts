// A small ONNX graph builder over onnx-proto (protobufjs messages): named inputs/outputs, f32/i64 initializers,
// nodes with typed attributes, serialised to ModelProto bytes. Not a model format: the Llama graph lives in llama-*.ts.
//
// Opset 17 of the default domain (ai.onnx), IR version 8: every op used here has its opset-17 signature (notably
// ReduceMean still takes `axes` as an attribute; it became an input at 18). onnxruntime 1.30 runs opsets up to 23.
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export const ONNX_OPSET = 17;
export const ONNX_IR_VERSION = 8;

export const ElemType = {
  FLOAT: onnx.TensorProto.DataType.FLOAT,
  INT64: onnx.TensorProto.DataType.INT64,
  BOOL: onnx.TensorProto.DataType.BOOL,
} as const;
export type ElemType = (typeof ElemType)[keyof typeof ElemType];

/** One attribute value, typed explicitly (a JS number cannot say whether 1 is an INT or a FLOAT attribute). */
export type AttrValue = { i: number } | { f: number } | { ints: number[] } | { floats: number[] } | { s: string };

/** A dimension: a fixed size or a symbolic name ("batch", "seq") shared by the inputs that have it. */
export type Dim = number | string;

export interface ModelOptions {
  producer?: string;
  docString?: string;
}

function valueInfo(name: string, elemType: ElemType, dims: readonly Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ('i' in v) return { name, type: T.INT, i: v.i };
  if ('f' in v) return { name, type: T.FLOAT, f: v.f };
  if ('ints' in v) return { name, type: T.INTS, ints: v.ints };
  if ('floats' in v) return { name, type: T.FLOATS, floats: v.floats };
  return { name, type: T.STRING, s: new TextEncoder().encode(v.s) };
}

/** Little-endian bytes of a typed array without copying (ONNX raw_data is little-endian; so is every host we ship). */
function rawBytes(data: Float32Array | BigInt64Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly inits: onnxProto.onnx.ITensorProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly names = new Set<string>();
  private readonly constCache = new Map<string, string>();
  private counter = 0;

  constructor(readonly graphName: string) {}

  /** A fresh value name starting with `hint` (node outputs, constants). */
  fresh(hint: string): string {
    return this.claim(this.unused(hint));
  }

  private unused(hint: string): string {
    let name: string;
    do name = `${hint}_${this.counter++}`;
    while (this.names.has(name));
    return name;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`ONNX graph ${this.graphName}: value name "${name}" is used twice`);
    this.names.add(name);
    return name;
  }

  input(name: string, elemType: ElemType, dims: readonly Dim[]): string {
    this.inputs.push(valueInfo(this.claim(name), elemType, dims));
    return name;
  }

  /** Declares `value` a graph output under `name` (an Identity node renames it when the names differ). */
  output(value: string, name: string, elemType: ElemType, dims: readonly Dim[]): string {
    if (value !== name) this.nodes.push({ opType: 'Identity', input: [value], output: [this.claim(name)], name: `out_${name}` });
    this.outputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  /** An f32 initializer holding `data` (not copied: the caller must not change it before toBytes). */
  initF32(name: string, dims: readonly number[], data: Float32Array): string {
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new Error(`ONNX initializer ${name}: dims [${dims.join(', ')}] hold ${count} values, data has ${data.length}`);
    this.inits.push({ name: this.claim(name), dims: [...dims], dataType: ElemType.FLOAT, rawData: rawBytes(data) });
    return name;
  }

  initI64(name: string, dims: readonly number[], values: readonly number[]): string {
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.inits.push({ name: this.claim(name), dims: [...dims], dataType: ElemType.INT64, rawData: rawBytes(data) });
    return name;
  }

  /** A small constant, shared by every use of the same value. `shape` [] is a scalar. */
  constF32(values: number | readonly number[], shape?: readonly number[]): string {
    const list = typeof values === 'number' ? [values] : [...values];
    const dims = shape ?? (typeof values === 'number' ? [] : [list.length]);
    const key = `f32:${dims.join('x')}:${list.join(',')}`;
    let name = this.constCache.get(key);
    if (!name) {
      name = this.initF32(this.unused('c_f32'), dims, Float32Array.from(list));
      this.constCache.set(key, name);
    }
    return name;
  }

  constI64(values: number | readonly number[], shape?: readonly number[]): string {
    const list = typeof values === 'number' ? [values] : [...values];
    const dims = shape ?? (typeof values === 'number' ? [] : [list.length]);
    const key = `i64:${dims.join('x')}:${list.join(',')}`;
    let name = this.constCache.get(key);
    if (!name) {
      name = this.initI64(this.unused('c_i64'), dims, list);
      this.constCache.set(key, name);
    }
    return name;
  }

  /** Adds a node with one output and returns its name. An empty string input means "omitted optional input". */
  op(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, opts: { name?: string; domain?: string } = {}): string {
    return this.opN(opType, inputs, 1, attrs, opts)[0]!;
  }

  opN(opType: string, inputs: readonly string[], outputCount: number, attrs: Record<string, AttrValue> = {}, opts: { name?: string; domain?: string } = {}): string[] {
    const outs = Array.from({ length: outputCount }, (_, i) => (opts.name && i === 0 ? this.claim(opts.name) : this.fresh(opType)));
    this.nodes.push({
      opType,
      domain: opts.domain ?? '',
      input: [...inputs],
      output: outs,
      name: this.fresh(`n_${opType}`),
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }

  /** Serialises the model. Initializer data is copied into the returned buffer once. */
  toBytes(opts: ModelOptions = {}): Uint8Array {
    const model: onnxProto.onnx.IModelProto = {
      irVersion: ONNX_IR_VERSION,
      producerName: opts.producer ?? 'confidant',
      docString: opts.docString ?? '',
      opsetImport: [{ domain: '', version: ONNX_OPSET }],
      graph: { name: this.graphName, node: this.nodes, initializer: this.inits, input: this.inputs, output: this.outputs },
    };
    return onnx.ModelProto.encode(model).finish();
  }
}
