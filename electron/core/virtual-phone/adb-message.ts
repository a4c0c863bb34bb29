// ADB transport message codec (device side): the 24-byte little-endian header plus payload, and a reader that
// cuts a TCP byte stream into whole messages. It is not a transport: no stream state, no services.
// Spec: AOSP packages/modules/adb/protocol.md ("struct message").

export const A_CNXN = 0x4e584e43;
export const A_AUTH = 0x48545541;
export const A_OPEN = 0x4e45504f;
export const A_OKAY = 0x59414b4f;
export const A_CLSE = 0x45534c43;
export const A_WRTE = 0x45545257;
export const A_STLS = 0x534c5453;

/** Protocol version without payload checksums (receivers ignore data_check from this version on). */
export const A_VERSION_SKIP_CHECKSUM = 0x01000001;
export const HEADER_BYTES = 24;
/** Largest payload any adb peer may send (adb's MAX_PAYLOAD since Android 9). */
export const MAX_PAYLOAD_BYTES_LIMIT = 1024 * 1024;

export interface AdbMessage {
  command: number;
  arg0: number;
  arg1: number;
  payload: Buffer;
}

export function commandName(command: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(command >>> 0, 0);
  return /^[A-Z]{4}$/.test(b.toString('latin1')) ? b.toString('latin1') : `0x${(command >>> 0).toString(16)}`;
}

/** Byte sum of the payload: the data_check field of protocol versions below A_VERSION_SKIP_CHECKSUM. */
export function payloadChecksum(payload: Buffer): number {
  let sum = 0;
  for (const byte of payload) sum = (sum + byte) >>> 0;
  return sum;
}

export function encodeMessage(command: number, arg0: number, arg1: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(HEADER_BYTES + payload.length);
  out.writeUInt32LE(command >>> 0, 0);
  out.writeUInt32LE(arg0 >>> 0, 4);
  out.writeUInt32LE(arg1 >>> 0, 8);
  out.writeUInt32LE(payload.length, 12);
  // Old hosts (version < 0x01000001) still check the sum; new ones ignore it, so always sending it is safe.
  out.writeUInt32LE(payloadChecksum(payload), 16);
  out.writeUInt32LE((command ^ 0xffffffff) >>> 0, 20);
  payload.copy(out, HEADER_BYTES);
  return out;
}

/** Accumulates socket bytes and yields whole messages; throws on a bad magic or an oversized length. */
export class MessageReader {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;

  constructor(private readonly maxPayloadBytes: number = MAX_PAYLOAD_BYTES_LIMIT) {}

  push(data: Buffer): AdbMessage[] {
    this.chunks.push(data);
    this.bufferedBytes += data.length;
    const out: AdbMessage[] = [];
    for (;;) {
      if (this.bufferedBytes < HEADER_BYTES) break;
      const head = this.peek(HEADER_BYTES);
      const command = head.readUInt32LE(0);
      const magic = head.readUInt32LE(20);
      if (((command ^ 0xffffffff) >>> 0) !== magic) {
        throw new Error(`adb message with bad magic: command ${commandName(command)} magic 0x${magic.toString(16)}`);
      }
      const length = head.readUInt32LE(12);
      if (length > this.maxPayloadBytes) {
        throw new Error(`adb message ${commandName(command)} payload of ${length} bytes exceeds ${this.maxPayloadBytes}`);
      }
      if (this.bufferedBytes < HEADER_BYTES + length) break;
      const whole = this.take(HEADER_BYTES + length);
      out.push({
        command,
        arg0: whole.readUInt32LE(4),
        arg1: whole.readUInt32LE(8),
        payload: whole.subarray(HEADER_BYTES),
      });
    }
    return out;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    const first = this.chunks[0]!;
    const out = Buffer.from(first.subarray(0, n));
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.bufferedBytes -= n;
    return out;
  }
}
