// Incremental frame parser: turns the chunks of a byte stream into whole frames, however the chunks split them.
// Not a stream owner: it never reads or closes a socket; after it throws, the stream position is lost for good.
import { decodeFrameHeader, FRAME_HEADER_BYTES, type Frame, type FrameHeader, ProtocolError } from './wire.js';

export class FrameParser {
  private chunks: Uint8Array[] = [];
  private bufferedBytes = 0;
  private header: FrameHeader | undefined;
  private failed: ProtocolError | undefined;

  /** `source` names the sender in error messages, e.g. "agent on R58N12ABC". */
  constructor(private readonly source = 'peer') {}

  /** Bytes received but not yet returned as a frame (a partial header or payload). */
  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  /**
   * Adds a chunk and returns the frames it completes (possibly none, possibly several). Throws ProtocolError on a
   * bad header (magic, flags, payload length); every later call throws the same error.
   */
  push(chunk: Uint8Array): Frame[] {
    if (this.failed) throw this.failed;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.bufferedBytes += chunk.length;
    }
    const frames: Frame[] = [];
    try {
      for (;;) {
        if (!this.header) {
          if (this.bufferedBytes < FRAME_HEADER_BYTES) break;
          this.header = decodeFrameHeader(this.take(FRAME_HEADER_BYTES), this.source);
        }
        if (this.bufferedBytes < this.header.payloadBytes) break;
        const payload = this.take(this.header.payloadBytes);
        frames.push({ kind: this.header.kind, requestId: this.header.requestId, payload });
        this.header = undefined;
      }
    } catch (err) {
      this.failed = err instanceof ProtocolError ? err : new ProtocolError(String(err));
      this.chunks = [];
      this.bufferedBytes = 0;
      throw this.failed;
    }
    return frames;
  }

  /**
   * Describes what is missing when the stream ends now: undefined when it ended on a frame boundary, else e.g.
   * "stream from agent on X ended inside a FORWARD frame: 1200 of 4096 payload bytes received".
   */
  truncation(): string | undefined {
    if (this.header) {
      return (
        `stream from ${this.source} ended inside a frame: ${this.bufferedBytes} of ` +
        `${this.header.payloadBytes} payload bytes received`
      );
    }
    if (this.bufferedBytes > 0) {
      const got = `${this.bufferedBytes} of ${FRAME_HEADER_BYTES} bytes`;
      return `stream from ${this.source} ended inside a frame header: ${got}`;
    }
    return undefined;
  }

  /** Removes and returns the first n buffered bytes (the caller checked that they are there). */
  private take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const first = this.chunks[0]!;
    if (first.length >= n) {
      // One chunk holds it all: a view, no copy. Copied at decode time (messages.ts) where it matters.
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.bufferedBytes -= n;
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const part = Math.min(c.length, n - filled);
      out.set(c.subarray(0, part), filled);
      filled += part;
      if (part === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(part);
    }
    this.bufferedBytes -= n;
    return out;
  }
}
