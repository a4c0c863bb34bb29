// Wire-level pieces of the host <-> agent protocol (docs/protocol.md): constants, the 16-byte frame header, and
// bounds-checked little-endian byte writer/reader. Not the per-command payloads (messages.ts) nor any I/O.

export const MAGIC = 0x444e4643; // the bytes 'C' 'F' 'N' 'D' read as a little-endian u32
export const PROTOCOL_VERSION = 1;
export const FRAME_HEADER_BYTES = 16;
export const MAX_PAYLOAD_BYTES = 1024 * 1024 * 1024;
export const MAX_STRING_BYTES = 1024 * 1024;
export const MAX_TENSOR_NDIM = 4;
export const REPLY_BIT = 0x8000;
export const ERROR_KIND = 0xffff;

export const COMMAND_CODES = {
  HELLO: 0x0001,
  LOAD_STAGE: 0x0002,
  SET_LORA: 0x0003,
  FORWARD: 0x0004,
  BACKWARD: 0x0005,
  GRAD_NORM: 0x0006,
  OPTIM_STEP: 0x0007,
  GET_LORA: 0x0008,
  STATS: 0x0009,
  SHUTDOWN: 0x000a,
  ZERO_GRAD: 0x000b,
  ZO_FORWARD: 0x000c,
  ZO_STEP: 0x000d,
  PROFILE: 0x000e,
  SET_SPLIT: 0x000f,
} as const;
export type CommandName = keyof typeof COMMAND_CODES;

/**
 * A frame the agent reads and never answers (docs/protocol.md "NOP"): header only, request id 0. Not a command
 * (every command has a reply); the client sends it so that the TCP acknowledgement of a reply goes out at once.
 */
export const NOP_KIND = 0x0010;

export const ERROR_CODES = {
  BAD_FRAME: 1,
  HANDSHAKE_REQUIRED: 2,
  AUTH_FAILED: 3,
  VERSION_MISMATCH: 4,
  UNKNOWN_COMMAND: 5,
  BAD_ARGUMENT: 6,
  LOAD_FAILED: 7,
  OUT_OF_MEMORY: 8,
  NOT_LOADED: 9,
  INTERNAL: 10,
} as const;
export type ErrorCodeName = keyof typeof ERROR_CODES;

/** Error codes after which the agent closes the connection (docs/protocol.md "Error codes"). */
export const CONNECTION_CLOSING_ERRORS: ReadonlySet<number> = new Set([
  ERROR_CODES.BAD_FRAME,
  ERROR_CODES.HANDSHAKE_REQUIRED,
  ERROR_CODES.AUTH_FAILED,
  ERROR_CODES.VERSION_MISMATCH,
]);

// Typed-array views below copy raw bytes, which is only correct on a little-endian host (every Node target is).
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('the Confidant wire protocol code assumes a little-endian host');
}

export function commandName(code: number): CommandName | undefined {
  for (const [name, c] of Object.entries(COMMAND_CODES)) if (c === code) return name as CommandName;
  return undefined;
}

export function errorCodeName(code: number): string {
  for (const [name, c] of Object.entries(ERROR_CODES)) if (c === code) return name;
  return `UNKNOWN_ERROR_${code}`;
}

/** Human name of a frame kind: "FORWARD", "FORWARD reply", "ERROR", or the hex code when unknown. */
export function kindName(kind: number): string {
  if (kind === ERROR_KIND) return 'ERROR';
  if (kind === NOP_KIND) return 'NOP';
  const isReply = (kind & REPLY_BIT) !== 0;
  const name = commandName(kind & ~REPLY_BIT);
  const base = name ?? `unknown kind 0x${kind.toString(16).padStart(4, '0')}`;
  return isReply && name ? `${base} reply` : base;
}

export interface FrameHeader {
  kind: number; // u16: a command code, code | REPLY_BIT, or ERROR_KIND
  flags: number; // u16, always 0 in version 1
  requestId: number; // u32
  payloadBytes: number; // u32, at most MAX_PAYLOAD_BYTES
}

export interface Frame {
  kind: number;
  requestId: number;
  payload: Uint8Array;
}

/** Thrown for bytes that break the framing rules or a payload layout; `message` says which field and why. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

function checkUint(value: number, bits: 8 | 16 | 32, what: string): void {
  const max = 2 ** bits - 1;
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new ProtocolError(`${what} must be an integer in [0, ${max}], got ${value}`);
  }
}

export function encodeFrameHeader(kind: number, requestId: number, payloadBytes: number): Uint8Array {
  checkUint(kind, 16, 'frame kind');
  checkUint(requestId, 32, 'request id');
  checkUint(payloadBytes, 32, 'payload_bytes');
  if (payloadBytes > MAX_PAYLOAD_BYTES) {
    throw new ProtocolError(`payload of ${payloadBytes} bytes is over MAX_PAYLOAD_BYTES (${MAX_PAYLOAD_BYTES})`);
  }
  const out = new Uint8Array(FRAME_HEADER_BYTES);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint16(4, kind, true);
  view.setUint16(6, 0, true);
  view.setUint32(8, requestId, true);
  view.setUint32(12, payloadBytes, true);
  return out;
}

/** Decodes and validates a header from the first 16 bytes of `bytes`; `source` names the sender in errors. */
export function decodeFrameHeader(bytes: Uint8Array, source = 'peer'): FrameHeader {
  if (bytes.length < FRAME_HEADER_BYTES) {
    throw new ProtocolError(`frame header from ${source} needs ${FRAME_HEADER_BYTES} bytes, got ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, FRAME_HEADER_BYTES);
  const magic = view.getUint32(0, true);
  if (magic !== MAGIC) {
    throw new ProtocolError(
      `bad frame from ${source}: magic 0x${magic.toString(16).padStart(8, '0')}, expected 0x${MAGIC.toString(16)} ` +
        `('CFND'); the peer is not a Confidant agent/host or the stream lost its position`,
    );
  }
  const kind = view.getUint16(4, true);
  const flags = view.getUint16(6, true);
  if (flags !== 0) {
    throw new ProtocolError(`bad frame from ${source}: flags 0x${flags.toString(16)} (${kindName(kind)}), must be 0`);
  }
  const requestId = view.getUint32(8, true);
  const payloadBytes = view.getUint32(12, true);
  if (payloadBytes > MAX_PAYLOAD_BYTES) {
    throw new ProtocolError(
      `bad frame from ${source}: payload_bytes ${payloadBytes} (${kindName(kind)}) is over ` +
        `MAX_PAYLOAD_BYTES ${MAX_PAYLOAD_BYTES}`,
    );
  }
  return { kind, flags, requestId, payloadBytes };
}

/** One whole frame (header + payload) as one buffer; used by tests and small messages. */
export function encodeFrame(kind: number, requestId: number, payload: Uint8Array | Uint8Array[]): Uint8Array {
  const parts = Array.isArray(payload) ? payload : [payload];
  const payloadBytes = parts.reduce((n, p) => n + p.length, 0);
  return concatBytes([encodeFrameHeader(kind, requestId, payloadBytes), ...parts]);
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

// Byte arrays at least this long are kept by reference instead of copied into the scratch buffer, so a 100 MB
// activation is not copied again while a payload is assembled.
const BY_REFERENCE_MIN_BYTES = 64 * 1024;

/**
 * Little-endian payload writer. `chunks()` returns the payload as a list of byte arrays (large tensor data is
 * referenced, not copied: callers must not mutate a tensor until its request has been written).
 */
export class ByteWriter {
  private readonly done: Uint8Array[] = [];
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  private used = 0;
  private doneBytes = 0;

  get lengthBytes(): number {
    return this.doneBytes + this.used;
  }

  /** Makes room for n bytes and returns their offset; may replace this.buf and this.view, so call it first. */
  private reserve(n: number): number {
    if (this.used + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.used + n));
      next.set(this.buf.subarray(0, this.used));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.used;
    this.used += n;
    return at;
  }

  u8(value: number, what = 'u8'): this {
    checkUint(value, 8, what);
    const at = this.reserve(1);
    this.view.setUint8(at, value);
    return this;
  }

  u16(value: number, what = 'u16'): this {
    checkUint(value, 16, what);
    const at = this.reserve(2);
    this.view.setUint16(at, value, true);
    return this;
  }

  u32(value: number, what = 'u32'): this {
    checkUint(value, 32, what);
    const at = this.reserve(4);
    this.view.setUint32(at, value, true);
    return this;
  }

  /** u64 from a bigint, or from a number that is an exact integer (at most 2^53 - 1). */
  u64(value: number | bigint, what = 'u64'): this {
    let big: bigint;
    if (typeof value === 'bigint') {
      big = value;
    } else {
      if (!Number.isSafeInteger(value)) {
        throw new ProtocolError(`${what} must be a non-negative safe integer, got ${value}`);
      }
      big = BigInt(value);
    }
    if (big < 0n || big > 0xffff_ffff_ffff_ffffn) throw new ProtocolError(`${what} ${big} does not fit a u64`);
    const at = this.reserve(8);
    this.view.setBigUint64(at, big, true);
    return this;
  }

  i32(value: number, what = 'i32'): this {
    if (!Number.isInteger(value) || value < -(2 ** 31) || value > 2 ** 31 - 1) {
      throw new ProtocolError(`${what} must be an integer in the i32 range, got ${value}`);
    }
    const at = this.reserve(4);
    this.view.setInt32(at, value, true);
    return this;
  }

  f32(value: number, what = 'f32'): this {
    if (typeof value !== 'number') throw new ProtocolError(`${what} must be a number, got ${typeof value}`);
    const at = this.reserve(4);
    this.view.setFloat32(at, value, true);
    return this;
  }

  f64(value: number, what = 'f64'): this {
    if (typeof value !== 'number') throw new ProtocolError(`${what} must be a number, got ${typeof value}`);
    const at = this.reserve(8);
    this.view.setFloat64(at, value, true);
    return this;
  }

  string(value: string, what = 'string'): this {
    const bytes = textEncoder.encode(value);
    if (bytes.length > MAX_STRING_BYTES) {
      throw new ProtocolError(`${what} is ${bytes.length} bytes of UTF-8, over the ${MAX_STRING_BYTES}-byte limit`);
    }
    this.u32(bytes.length, `${what} length`);
    return this.bytes(bytes);
  }

  bytes(value: Uint8Array): this {
    if (value.length >= BY_REFERENCE_MIN_BYTES) {
      this.flush();
      this.done.push(value);
      this.doneBytes += value.length;
    } else {
      const at = this.reserve(value.length);
      this.buf.set(value, at);
    }
    return this;
  }

  private flush(): void {
    if (this.used === 0) return;
    this.done.push(this.buf.slice(0, this.used));
    this.doneBytes += this.used;
    this.used = 0;
  }

  chunks(): Uint8Array[] {
    this.flush();
    return [...this.done];
  }

  toBytes(): Uint8Array {
    return concatBytes(this.chunks());
  }
}

/**
 * Little-endian payload reader. Every read names the field it reads (`what`), so a short or malformed payload
 * fails with e.g. "FORWARD reply: payload ends at byte 9 while reading loss_sum (f64, 8 bytes)".
 */
export class ByteReader {
  private readonly view: DataView;
  private pos = 0;

  constructor(
    private readonly src: Uint8Array,
    private readonly context = 'payload',
  ) {
    this.view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  }

  get offsetBytes(): number {
    return this.pos;
  }

  get remainingBytes(): number {
    return this.src.length - this.pos;
  }

  private take(n: number, what: string, type: string): number {
    if (n > this.remainingBytes) {
      throw new ProtocolError(
        `${this.context}: payload of ${this.src.length} bytes ends at byte ${this.src.length} while reading ` +
          `${what} (${type}, ${n} bytes at offset ${this.pos})`,
      );
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(what: string): number {
    return this.view.getUint8(this.take(1, what, 'u8'));
  }

  u16(what: string): number {
    return this.view.getUint16(this.take(2, what, 'u16'), true);
  }

  u32(what: string): number {
    return this.view.getUint32(this.take(4, what, 'u32'), true);
  }

  u64Big(what: string): bigint {
    return this.view.getBigUint64(this.take(8, what, 'u64'), true);
  }

  /** A u64 as a number; values above 2^53 - 1 (not exactly representable) are an error naming the field. */
  u64(what: string): number {
    const big = this.u64Big(what);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new ProtocolError(`${this.context}: ${what} = ${big} is above 2^53 - 1 and cannot be held exactly`);
    }
    return Number(big);
  }

  i32(what: string): number {
    return this.view.getInt32(this.take(4, what, 'i32'), true);
  }

  f32(what: string): number {
    return this.view.getFloat32(this.take(4, what, 'f32'), true);
  }

  f64(what: string): number {
    return this.view.getFloat64(this.take(8, what, 'f64'), true);
  }

  /** A u8 that must be 0 or 1 (the has_* flags). */
  bool(what: string): boolean {
    const v = this.u8(what);
    if (v > 1) throw new ProtocolError(`${this.context}: ${what} must be 0 or 1, got ${v}`);
    return v === 1;
  }

  string(what: string): string {
    const n = this.u32(`${what} length`);
    if (n > MAX_STRING_BYTES) {
      throw new ProtocolError(`${this.context}: ${what} is ${n} bytes long, over the ${MAX_STRING_BYTES}-byte limit`);
    }
    const raw = this.bytes(n, what);
    try {
      return textDecoder.decode(raw);
    } catch {
      throw new ProtocolError(`${this.context}: ${what} is not valid UTF-8`);
    }
  }

  /** A view (no copy) of the next n bytes. */
  bytes(n: number, what: string): Uint8Array {
    const at = this.take(n, what, 'bytes');
    return this.src.subarray(at, at + n);
  }

  /** Fails when bytes are left over: a payload longer than its fields is as wrong as a short one. */
  end(): void {
    if (this.remainingBytes !== 0) {
      throw new ProtocolError(
        `${this.context}: ${this.remainingBytes} unexpected bytes after the last field (payload is ` +
          `${this.src.length} bytes, fields end at ${this.pos})`,
      );
    }
  }
}
