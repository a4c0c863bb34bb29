// Device side of one ADB transport connection (what adbd does on a TCP socket): the CNXN handshake, with the AUTH
// exchange of a phone that has not allowed this host yet, then OPEN/OKAY/WRTE/CLSE stream multiplexing with one
// WRTE in flight per stream. It is not a service: what a stream does is decided by the `openService` callback.
// Spec: AOSP packages/modules/adb/protocol.md (CONNECT, AUTH) and adb's adb_auth_host.cpp for the host's side.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import {
  A_AUTH, A_CLSE, A_CNXN, A_OKAY, A_OPEN, A_STLS, A_VERSION_SKIP_CHECKSUM, A_WRTE, MAX_PAYLOAD_BYTES_LIMIT,
  MessageReader, commandName, encodeMessage, type AdbMessage,
} from './adb-message.js';

/** AUTH arg0 (protocol.md): the device's random token, the host's signature of it, the host's public key. */
export const ADB_AUTH_TOKEN = 1;
export const ADB_AUTH_SIGNATURE = 2;
export const ADB_AUTH_RSAPUBLICKEY = 3;
/** adbd's token length (TOKEN_SIZE). */
const AUTH_TOKEN_BYTES = 20;

/** What a service does with the bytes the host writes to its stream, and when the host closes it. */
export interface StreamHandler {
  /** Called once per host WRTE, in order; the OKAY that lets the host send more goes out when this settles. */
  onData(data: Buffer): Promise<void> | void;
  /** The host closed the stream, or the connection died. Called at most once. */
  onClose(): void;
}

/** The service's end of a stream: bytes to the host, and closing. */
export interface ServiceStream {
  /** Queues bytes for the host (split to its max payload); resolves once the host has OKAYed all of them. */
  write(data: Buffer): Promise<void>;
  /** Closes the stream after the queued bytes are acknowledged (CLSE, like adbd at end of a service). */
  close(): void;
  readonly closed: boolean;
  /** Bytes queued and not yet acknowledged by the host. */
  readonly pendingBytes: number;
}

/** Returns a handler, or null to refuse the service (the host then sees CLSE(0, id), "closed"). */
export type ServiceOpener = (service: string, stream: ServiceStream) => Promise<StreamHandler | null> | StreamHandler | null;

export interface DeviceBanner {
  productName: string;
  model: string;
  device: string;
  /** Features to advertise; empty = legacy shell/sync only (no shell_v2, stat_v2, ls_v2, sendrecv_v2). */
  features: string[];
}

export interface TransportOptions {
  banner: DeviceBanner;
  openService: ServiceOpener;
  /** Our CNXN max payload; the effective one is min(ours, host's). */
  maxPayloadBytes?: number;
  /**
   * Whether the host may connect (default: always). While false the phone answers CNXN with AUTH tokens, refuses
   * every signature, and keeps the host's public key waiting at the "Allow debugging?" prompt; adb lists it as
   * "unauthorized". authorizationGranted() lets waiting hosts in.
   */
  isAuthorized?: () => boolean;
  log?: (line: string) => void;
}

interface OutChunk {
  data: Buffer;
  done: () => void;
}

class Stream implements ServiceStream {
  closed = false;
  /** False until the OPEN is answered with OKAY: nothing may be written to the host before that. */
  ready = false;
  handler: StreamHandler | null = null;
  private queue: OutChunk[] = [];
  private inFlight: OutChunk | null = null;
  private closeRequested = false;
  private inbound: Promise<void> = Promise.resolve();
  pendingBytes = 0;

  constructor(
    readonly deviceId: number,
    readonly hostId: number,
    private readonly transport: DeviceTransport,
  ) {}

  write(data: Buffer): Promise<void> {
    if (this.closed || this.closeRequested || data.length === 0) return Promise.resolve();
    const max = this.transport.effectiveMaxPayloadBytes;
    const parts: Promise<void>[] = [];
    for (let off = 0; off < data.length; off += max) {
      const piece = data.subarray(off, Math.min(off + max, data.length));
      this.pendingBytes += piece.length;
      parts.push(new Promise<void>((resolve) => this.queue.push({ data: piece, done: resolve })));
    }
    this.pump();
    return Promise.all(parts).then(() => undefined);
  }

  close(): void {
    if (this.closed || this.closeRequested) return;
    this.closeRequested = true;
    this.pump();
  }

  /** Host OKAY for our in-flight WRTE. */
  acked(): void {
    const chunk = this.inFlight;
    this.inFlight = null;
    if (chunk) {
      this.pendingBytes -= chunk.data.length;
      chunk.done();
    }
    this.pump();
  }

  /** Host WRTE: hand to the service in order, OKAY when it has taken the bytes. */
  received(data: Buffer): void {
    this.inbound = this.inbound
      .then(() => this.handler?.onData(data))
      .then(
        () => { if (!this.closed) this.transport.send(A_OKAY, this.deviceId, this.hostId); },
        (err: unknown) => {
          this.transport.log(`stream ${this.deviceId}: service failed on data: ${(err as Error).message}`);
          this.close();
        },
      );
  }

  /** The host closed it or the connection died: no CLSE back (protocol.md: the peer already forgot the id). */
  drop(): void {
    if (this.closed) return;
    this.markClosed();
    this.handler?.onClose();
  }

  pump(): void {
    if (!this.ready || this.closed || this.inFlight) return;
    const next = this.queue.shift();
    if (next) {
      this.inFlight = next;
      this.transport.send(A_WRTE, this.deviceId, this.hostId, next.data);
      return;
    }
    if (this.closeRequested) {
      this.transport.send(A_CLSE, this.deviceId, this.hostId);
      this.markClosed();
      // The service closed its own side; tell it so it can release what it holds (idempotent in services).
      this.handler?.onClose();
    }
  }

  private markClosed(): void {
    this.closed = true;
    for (const chunk of this.queue) chunk.done();
    this.inFlight?.done();
    this.queue = [];
    this.inFlight = null;
    this.pendingBytes = 0;
    this.transport.forget(this.deviceId);
  }
}

export class DeviceTransport {
  private readonly reader: MessageReader;
  private readonly streams = new Map<number, Stream>();
  private nextDeviceId = 1;
  private connected = false;
  /** The host's CNXN arrived and we answered with AUTH instead of CNXN. */
  private authenticating = false;
  private hostMaxPayloadBytes = 4096;
  private dead = false;
  private readonly ourMaxPayloadBytes: number;
  effectiveMaxPayloadBytes: number;

  constructor(private readonly socket: Socket, private readonly options: TransportOptions) {
    this.ourMaxPayloadBytes = Math.min(options.maxPayloadBytes ?? 256 * 1024, MAX_PAYLOAD_BYTES_LIMIT);
    this.effectiveMaxPayloadBytes = 4096;
    this.reader = new MessageReader(MAX_PAYLOAD_BYTES_LIMIT);
    socket.setNoDelay(true);
    socket.on('data', (data: Buffer) => this.onBytes(data));
    socket.on('error', (err) => this.log(`socket error: ${err.message}`));
    socket.on('close', () => this.shutdown());
  }

  log(line: string): void {
    this.options.log?.(line);
  }

  send(command: number, arg0: number, arg1: number, payload?: Buffer): void {
    if (this.dead || this.socket.destroyed) return;
    this.socket.write(encodeMessage(command, arg0, arg1, payload));
  }

  forget(deviceId: number): void {
    this.streams.delete(deviceId);
  }

  /** Closes every stream (services see onClose) and the socket. */
  shutdown(): void {
    if (this.dead) return;
    this.dead = true;
    for (const stream of [...this.streams.values()]) stream.drop();
    this.streams.clear();
    this.socket.destroy();
  }

  private onBytes(data: Buffer): void {
    let messages: AdbMessage[];
    try {
      messages = this.reader.push(data);
    } catch (err) {
      this.log(`dropping connection: ${(err as Error).message}`);
      this.shutdown();
      return;
    }
    for (const m of messages) this.onMessage(m);
  }

  private onMessage(m: AdbMessage): void {
    switch (m.command) {
      case A_CNXN: {
        // A (re)connect resets every stream, like adbd's handle_new_connection.
        for (const stream of [...this.streams.values()]) stream.drop();
        this.connected = false;
        this.hostMaxPayloadBytes = m.arg1 > 0 ? m.arg1 : 4096;
        this.log(`CNXN from host (version 0x${m.arg0.toString(16)}, max payload ${this.hostMaxPayloadBytes} bytes): ${m.payload.toString('utf8').replace(/\0+$/, '')}`);
        if (this.options.isAuthorized && !this.options.isAuthorized()) {
          this.authenticating = true;
          this.sendAuthToken();
          return;
        }
        this.sendConnect();
        return;
      }
      case A_AUTH:
        this.onAuth(m);
        return;
      case A_STLS:
        // We never offer TLS; a host sending it is confused, so say so and carry on.
        this.log(`ignoring unexpected ${commandName(m.command)} from host`);
        return;
      case A_OPEN:
        if (!this.connected) return;
        void this.open(m.arg0, m.payload.toString('utf8').replace(/\0+$/, ''));
        return;
      case A_OKAY:
        this.streams.get(m.arg1)?.acked();
        return;
      case A_WRTE: {
        const stream = this.streams.get(m.arg1);
        if (stream) stream.received(m.payload);
        return;
      }
      case A_CLSE:
        this.streams.get(m.arg1)?.drop();
        return;
      default:
        this.log(`ignoring unknown command ${commandName(m.command)}`);
    }
  }

  /** The user allowed debugging: a host waiting in the AUTH exchange is connected now. */
  authorizationGranted(): void {
    if (this.authenticating && !this.connected && !this.dead) this.sendConnect();
  }

  private sendConnect(): void {
    this.authenticating = false;
    this.effectiveMaxPayloadBytes = Math.min(this.hostMaxPayloadBytes, this.ourMaxPayloadBytes);
    this.connected = true;
    const b = this.options.banner;
    const banner = `device::ro.product.name=${b.productName};ro.product.model=${b.model};` +
      `ro.product.device=${b.device};features=${b.features.join(',')}`;
    this.send(A_CNXN, A_VERSION_SKIP_CHECKSUM, this.ourMaxPayloadBytes, Buffer.from(banner, 'utf8'));
  }

  private sendAuthToken(): void {
    this.send(A_AUTH, ADB_AUTH_TOKEN, 0, randomBytes(AUTH_TOKEN_BYTES));
  }

  /**
   * The host signs our token with each of its keys (we refuse each: no key is trusted yet, so we answer with a
   * fresh token); when it has no key left it sends its public key, and real adbd shows the prompt. adb lists the
   * phone as "authorizing" during the signatures and "unauthorized" once the public key is out.
   */
  private onAuth(m: AdbMessage): void {
    if (!this.authenticating || this.connected) {
      this.log(`ignoring AUTH type ${m.arg0} outside the handshake`);
      return;
    }
    const allowed = !this.options.isAuthorized || this.options.isAuthorized();
    if (m.arg0 === ADB_AUTH_SIGNATURE) {
      if (allowed) this.sendConnect();
      else this.sendAuthToken();
    } else if (m.arg0 === ADB_AUTH_RSAPUBLICKEY) {
      if (allowed) this.sendConnect();
      else this.log(`host public key received (${m.payload.length} bytes): waiting at the "Allow debugging?" prompt`);
    } else {
      this.log(`ignoring AUTH of unknown type ${m.arg0}`);
    }
  }

  private async open(hostId: number, service: string): Promise<void> {
    const deviceId = this.nextDeviceId++;
    if (this.nextDeviceId > 0x7fffffff) this.nextDeviceId = 1;
    const stream = new Stream(deviceId, hostId, this);
    this.streams.set(deviceId, stream);
    let handler: StreamHandler | null = null;
    try {
      handler = await this.options.openService(service, stream);
    } catch (err) {
      this.log(`service "${service}" failed to open: ${(err as Error).message}`);
    }
    if (!handler || this.dead) {
      this.streams.delete(deviceId);
      this.send(A_CLSE, 0, hostId);
      return;
    }
    stream.handler = handler;
    this.send(A_OKAY, deviceId, hostId);
    stream.ready = true;
    stream.pump();
    this.log(`OPEN ${deviceId} <- host ${hostId}: ${service.length > 200 ? service.slice(0, 200) + '...' : service}`);
  }
}
