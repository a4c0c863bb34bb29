// Host side of one agent session over a byte stream (net.Socket or an adbkit tunnel): HELLO, then typed requests
// answered in order, a few on the wire at once, each with a timeout and an abort signal. Not a connector: adb
// tunnels/spawning live elsewhere.
import type { Duplex } from 'node:stream';
import { FrameParser } from './frame-stream.js';
import {
  decodeError,
  decodeReply,
  encodeRequest,
  type BackwardReply,
  type BackwardRequest,
  type ForwardReply,
  type ForwardRequest,
  GET_LORA_FLAG_INCLUDE_GRADS,
  GET_LORA_FLAG_INCLUDE_MOMENTS,
  type LoadStageReply,
  type LoadStageRequest,
  type NamedTensor,
  type OptimStepRequest,
  type LayerSplit,
  type ProfileRequest,
  type Replies,
  type Requests,
  type StatsReply,
  type ZoForwardReply,
  type ZoForwardRequest,
  type ZoStepRequest,
} from './messages.js';
import { type BackendDescription, parseBackends, parseProfileResult, type ProfileResult } from './profile.js';
import {
  COMMAND_CODES,
  CONNECTION_CLOSING_ERRORS,
  type CommandName,
  encodeFrameHeader,
  ERROR_CODES,
  ERROR_KIND,
  errorCodeName,
  type Frame,
  kindName,
  NOP_KIND,
  PROTOCOL_VERSION,
  REPLY_BIT,
} from './wire.js';

export const DEFAULT_TIMEOUT_MS = 30_000;
/** PROFILE runs every layer reps times on every backend: its default limit is this, or the client's if longer. */
export const DEFAULT_PROFILE_TIMEOUT_MS = 300_000;

/** Idle time after which the client sends a STATS to keep the agent's silence timeout away. */
export const DEFAULT_KEEP_ALIVE_MS = 120_000;

/**
 * Requests on the wire at once by default: the next one waits in the agent's socket while it computes the current
 * one, so it starts that the moment it replies instead of one host round trip later (docs/protocol.md "Transport").
 * Two hide the round trip; more would only hold more payloads in socket buffers.
 */
export const DEFAULT_PIPELINE_DEPTH = 2;

export interface AgentClientOptions {
  /** The per-session secret the agent reads from its --token-file. */
  token: string;
  /** Limit for HELLO and the default for every request (from sending until the reply), in milliseconds. */
  timeoutMs?: number;
  /** Names the agent in every error message, normally the device serial. */
  label?: string;
  /**
   * After this long without a request, send a STATS so the agent's --host-silence-timeout-s (900 s) does not end
   * a session whose pipeline is waiting on a slower phone (default 120 s; 0 = never).
   */
  keepAliveMs?: number;
  /** At most this many requests on the wire (sent, not yet answered); 1 = strict request/reply. Default 2. */
  pipelineDepth?: number;
}

export interface RequestOptions {
  /** Overrides the client's timeoutMs for this request. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface AgentCapabilities {
  agentVersion: string;
  protocolVersion: number;
  abi: string;
  cpuThreads: number;
  memoryBudgetBytes: number;
  /** HELLO's backends string split into its entries, e.g. ["cpu(neon x4)", "opencl(Adreno 740)"]. */
  backends: string[];
  /** The same entries parsed: name and the detail in parentheses. */
  backendDetails: BackendDescription[];
  /** Whether the agent can run work on OpenCL (a backend named "opencl"; SET_SPLIT needs it). */
  opencl: boolean;
  /**
   * HELLO's OpenCL device type (CL_DEVICE_TYPE): 'cpu' means the device runs on the same cores as the CPU backend
   * (PoCL), so a split cannot run beside it. null without OpenCL, or from an agent that does not report it.
   */
  openclDeviceType: OpenclDeviceType | null;
}

export type OpenclDeviceType = 'gpu' | 'cpu' | 'accelerator' | 'other';

/** HELLO's opencl_device_type: '' (no OpenCL) and absent are null; a value this host does not know is 'other'. */
export function parseOpenclDeviceType(reported: string | undefined): OpenclDeviceType | null {
  if (!reported) return null;
  return reported === 'gpu' || reported === 'cpu' || reported === 'accelerator' ? reported : 'other';
}

/** The agent answered a request with an ERROR frame. */
export class AgentError extends Error {
  override name = 'AgentError';
  constructor(
    readonly label: string,
    readonly command: CommandName,
    readonly code: number,
    readonly codeName: string,
    readonly agentMessage: string,
  ) {
    super(`agent on ${label} refused ${command}: ${codeName}: ${agentMessage}${errorHint(code)}`);
  }

  /** True when the agent closes the connection after this error (docs/protocol.md "Error codes"). */
  get closesConnection(): boolean {
    return CONNECTION_CLOSING_ERRORS.has(this.code);
  }
}

function errorHint(code: number): string {
  if (code === ERROR_CODES.AUTH_FAILED) return " (the token sent does not match the agent's --token-file)";
  if (code === ERROR_CODES.VERSION_MISMATCH) {
    return ` (this host speaks protocol version ${PROTOCOL_VERSION}: deploy the agent built with it)`;
  }
  return '';
}

export type ConnectionFailure = 'closed' | 'timeout' | 'aborted' | 'protocol' | 'stream-error' | 'shut-down' | 'heartbeat';

/** The connection is gone or unusable: closed by either side, timed out, aborted, or the bytes made no sense. */
export class AgentConnectionError extends Error {
  override name = 'AgentConnectionError';
  constructor(
    readonly reason: ConnectionFailure,
    readonly label: string,
    message: string,
  ) {
    super(message);
  }
}

interface Queued {
  command: CommandName;
  fields: unknown;
  opts: RequestOptions;
  resolve(value: unknown): void;
  reject(err: Error): void;
  onAbort?: () => void;
}

interface InFlight {
  item: Queued;
  requestId: number;
  /** Armed once the request is at the head of the line, i.e. the agent is working on it. */
  timer?: NodeJS.Timeout;
}

export class AgentClient {
  readonly label: string;
  private readonly timeoutMs: number;
  private readonly parser: FrameParser;
  private readonly queue: Queued[] = [];
  /** Sent and not yet answered, oldest first: the agent answers in this order. */
  private readonly onWire: InFlight[] = [];
  private readonly pipelineDepth: number;
  /** Frames written so far, requests and NOPs: tells whether anything went out since a reply arrived. */
  private framesSent = 0;
  private ackScheduled = false;
  private closedBy: AgentConnectionError | undefined;
  private nextRequestId = 1;
  private capabilitiesValue: AgentCapabilities | undefined;
  private readonly closedPromise: Promise<AgentConnectionError>;
  private resolveClosed!: (err: AgentConnectionError) => void;
  private lastSentMs = Date.now();
  private keepAliveTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly stream: Duplex,
    opts: { label?: string; timeoutMs?: number; keepAliveMs?: number; pipelineDepth?: number },
  ) {
    this.label = opts.label ?? defaultLabel(stream);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.pipelineDepth = opts.pipelineDepth ?? DEFAULT_PIPELINE_DEPTH;
    if (!Number.isInteger(this.pipelineDepth) || this.pipelineDepth < 1) {
      throw new Error(`pipelineDepth must be an integer >= 1, got ${opts.pipelineDepth}`);
    }
    this.parser = new FrameParser(`agent on ${this.label}`);
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('end', () => this.onStreamClosed());
    stream.on('close', () => this.onStreamClosed());
    stream.on('error', (err: Error) => this.onStreamError(err));
    if (stream.destroyed) this.onStreamClosed();
    const keepAliveMs = opts.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS;
    if (keepAliveMs > 0) {
      this.keepAliveTimer = setInterval(() => {
        if (!this.busy && this.isOpen && Date.now() - this.lastSentMs >= keepAliveMs) this.stats().catch(() => undefined);
      }, Math.max(10, Math.min(keepAliveMs / 4, 30_000)));
      this.keepAliveTimer.unref(); // never keeps the process alive by itself
    }
  }

  /**
   * Sends HELLO with the token and returns a client once the agent accepted it. On any failure (wrong token,
   * version mismatch, timeout, closed stream) the stream is destroyed and the promise rejects.
   */
  static async connect(stream: Duplex, opts: AgentClientOptions): Promise<AgentClient> {
    const client = new AgentClient(stream, opts);
    try {
      const hello = await client.request('HELLO', { protocolVersion: PROTOCOL_VERSION, token: opts.token });
      if (hello.protocolVersion !== PROTOCOL_VERSION) {
        throw new AgentConnectionError(
          'protocol',
          client.label,
          `agent on ${client.label} (version ${hello.agentVersion}) speaks protocol version ` +
            `${hello.protocolVersion}, this host speaks ${PROTOCOL_VERSION}: deploy the matching agent`,
        );
      }
      const backendDetails = parseBackends(hello.backends);
      client.capabilitiesValue = {
        agentVersion: hello.agentVersion,
        protocolVersion: hello.protocolVersion,
        abi: hello.abi,
        cpuThreads: hello.cpuThreads,
        memoryBudgetBytes: hello.memoryBudgetBytes,
        backends: backendDetails.map((b) => (b.detail === undefined ? b.name : `${b.name}(${b.detail})`)),
        backendDetails,
        opencl: backendDetails.some((b) => b.name === 'opencl'),
        openclDeviceType: parseOpenclDeviceType(hello.openclDeviceType),
      };
      return client;
    } catch (err) {
      client.close();
      throw err;
    }
  }

  get capabilities(): AgentCapabilities {
    if (!this.capabilitiesValue) throw new Error(`agent on ${this.label}: no HELLO reply yet`);
    return this.capabilitiesValue;
  }

  /** False once the connection is closed for any reason; every later request rejects. */
  get isOpen(): boolean {
    return this.closedBy === undefined;
  }

  /** Resolves (never rejects) with the reason once the connection is closed. */
  whenClosed(): Promise<AgentConnectionError> {
    return this.closedPromise;
  }

  loadStage(req: LoadStageRequest, opts: RequestOptions = {}): Promise<LoadStageReply> {
    return this.request('LOAD_STAGE', req, opts);
  }

  async setLora(tensors: NamedTensor[], opts: RequestOptions = {}): Promise<void> {
    await this.request('SET_LORA', { tensors }, opts);
  }

  forward(req: ForwardRequest, opts: RequestOptions = {}): Promise<ForwardReply> {
    return this.request('FORWARD', req, opts);
  }

  backward(req: BackwardRequest, opts: RequestOptions = {}): Promise<BackwardReply> {
    return this.request('BACKWARD', req, opts);
  }

  /** Sum of squares of every trainable LoRA gradient on this stage. */
  async gradNorm(opts: RequestOptions = {}): Promise<number> {
    return (await this.request('GRAD_NORM', {}, opts)).sumSquares;
  }

  async optimStep(req: OptimStepRequest, opts: RequestOptions = {}): Promise<void> {
    await this.request('OPTIM_STEP', req, opts);
  }

  /** includeMoments: also the AdamW moments (.adam_m, .adam_v), which SET_LORA accepts back (checkpoint restore). */
  async getLora(opts: RequestOptions & { includeGrads?: boolean; includeMoments?: boolean } = {}): Promise<NamedTensor[]> {
    const flags = (opts.includeGrads ? GET_LORA_FLAG_INCLUDE_GRADS : 0) | (opts.includeMoments ? GET_LORA_FLAG_INCLUDE_MOMENTS : 0);
    return (await this.request('GET_LORA', { flags }, opts)).tensors;
  }

  stats(opts: RequestOptions = {}): Promise<StatsReply> {
    return this.request('STATS', {}, opts);
  }

  async zeroGrad(opts: RequestOptions = {}): Promise<void> {
    await this.request('ZERO_GRAD', {}, opts);
  }

  /**
   * P-RGE batched forward: input holds 2 * queries copies of one minibatch (copy-major; copy 2i at +eps, 2i+1 at
   * -eps of query i). Non-last stages answer the hidden state; the last (with targets and mask) one loss sum and
   * one weight sum per copy.
   */
  zoForward(req: ZoForwardRequest, opts: RequestOptions = {}): Promise<ZoForwardReply> {
    return this.request('ZO_FORWARD', req, opts);
  }

  /** P-RGE update of every LoRA B from the projected gradients g (one per query) of ZO_FORWARD (seed, step). */
  async zoStep(req: ZoStepRequest, opts: RequestOptions = {}): Promise<void> {
    await this.request('ZO_STEP', req, opts);
  }

  /**
   * Times the loaded stage at micro-batch [batch, seqLen] (medians over reps runs) on every backend; the reply is
   * validated against docs/protocol.md "PROFILE reply". Default limit: DEFAULT_PROFILE_TIMEOUT_MS.
   */
  async profile(req: ProfileRequest, opts: RequestOptions = {}): Promise<ProfileResult> {
    const timeoutMs = opts.timeoutMs ?? Math.max(this.timeoutMs, DEFAULT_PROFILE_TIMEOUT_MS);
    const reply = await this.request('PROFILE', req, { ...opts, timeoutMs });
    return parseProfileResult(reply.profileJson, `agent on ${this.label}`);
  }

  /** Which part of each local layer runs on OpenCL; one entry per layer of the loaded stage, in order. */
  async setSplit(splits: LayerSplit[], opts: RequestOptions = {}): Promise<void> {
    await this.request('SET_SPLIT', { layers: splits }, opts);
  }

  /** Asks the agent to exit; resolves once it acknowledged, then closes this side too. */
  async shutdown(opts: RequestOptions = {}): Promise<void> {
    await this.request('SHUTDOWN', {}, opts);
    this.fail(new AgentConnectionError('shut-down', this.label, `agent on ${this.label} was shut down`));
  }

  /** Closes the connection (the agent exits when it sees that); pending and queued requests reject. Idempotent. */
  close(): void {
    const message = `the host closed the connection to agent on ${this.label}`;
    this.fail(new AgentConnectionError('closed', this.label, message));
  }

  /**
   * Ends the session for a reason seen outside it (a heartbeat that lost the phone, a cancelled run): the request
   * in flight, the queued ones and every later one reject with `message`. Idempotent; the first reason wins.
   */
  terminate(reason: ConnectionFailure, message: string): void {
    this.fail(new AgentConnectionError(reason, this.label, message));
  }

  /** True while a request is on the wire or queued. */
  get busy(): boolean {
    return this.onWire.length > 0 || this.queue.length > 0;
  }

  /**
   * Queues a request; requests go out in call order, at most pipelineDepth on the wire, and are answered in that
   * order. Each one's timeout runs from when the one before it was answered (the agent serves one at a time).
   */
  request<C extends CommandName>(command: C, fields: Requests[C], opts: RequestOptions = {}): Promise<Replies[C]> {
    return new Promise<Replies[C]>((resolve, reject) => {
      if (this.closedBy) return reject(this.afterClose(command));
      if (opts.signal?.aborted) return reject(this.abortError(command, 'before it was sent'));
      const item: Queued = { command, fields, opts, resolve: resolve as (v: unknown) => void, reject };
      if (opts.signal) {
        item.onAbort = () => this.onAbort(item);
        opts.signal.addEventListener('abort', item.onAbort, { once: true });
      }
      this.queue.push(item);
      this.pump();
    });
  }

  private pump(): void {
    while (!this.closedBy && this.onWire.length < this.pipelineDepth && this.queue.length > 0) this.send(this.queue.shift()!);
  }

  private send(item: Queued): void {
    let chunks: Uint8Array[];
    try {
      chunks = encodeRequest(item.command, item.fields as never);
    } catch (err) {
      // A bad argument never reached the wire: the connection stays usable.
      this.settle(item);
      item.reject(new Error(`cannot send ${item.command} to agent on ${this.label}: ${(err as Error).message}`));
      return;
    }
    const requestId = this.nextRequestId;
    this.nextRequestId = this.nextRequestId >= 0xffffffff ? 1 : this.nextRequestId + 1;
    this.onWire.push({ item, requestId });
    if (this.onWire.length === 1) this.armHead();
    this.lastSentMs = Date.now();
    const payloadBytes = chunks.reduce((n, c) => n + c.length, 0);
    this.write(item.command, [encodeFrameHeader(COMMAND_CODES[item.command], requestId, payloadBytes), ...chunks]);
  }

  private write(what: string, chunks: Uint8Array[]): void {
    this.framesSent++;
    try {
      this.stream.cork();
      for (const c of chunks) this.stream.write(c);
      this.stream.uncork();
    } catch (err) {
      this.fail(
        new AgentConnectionError('stream-error', this.label, `cannot send ${what} to agent on ${this.label}: ${(err as Error).message}`),
      );
    }
  }

  /**
   * Called after a reply: if requests are still on the wire and nothing is sent in the meantime, sends a NOP.
   * Writing anything carries the TCP acknowledgement of the reply just read. Without it the next reply can sit in
   * the adb server for 40 ms: the server's socket to us has Nagle's algorithm on, so it holds a small write while
   * its previous one is unacknowledged, and Linux delays a lone acknowledgement by up to 40 ms. Request/reply never
   * met this (the next request carried the acknowledgement); pipelined replies come back to back.
   */
  private acknowledgeSoon(sentBefore: number): void {
    if (this.ackScheduled || this.onWire.length === 0) return;
    this.ackScheduled = true;
    // After the reply's promise callbacks, which often send the next request themselves.
    setImmediate(() => {
      this.ackScheduled = false;
      if (!this.closedBy && this.onWire.length > 0 && this.framesSent === sentBefore) {
        this.write('NOP', [encodeFrameHeader(NOP_KIND, 0, 0)]);
      }
    });
  }

  /** Starts the timeout of the oldest request on the wire: the agent is working on it from now. */
  private armHead(): void {
    const head = this.onWire[0];
    if (!head || head.timer) return;
    const timeoutMs = head.item.opts.timeoutMs ?? this.timeoutMs;
    head.timer = setTimeout(() => {
      this.fail(
        new AgentConnectionError(
          'timeout',
          this.label,
          `agent on ${this.label} did not answer ${head.item.command} (request ${head.requestId}) within ${timeoutMs} ms; ` +
            `the connection was closed, since a late reply could no longer be told apart`,
        ),
      );
    }, timeoutMs);
  }

  private onData(chunk: Uint8Array): void {
    if (this.closedBy) return;
    let frames: Frame[];
    try {
      frames = this.parser.push(chunk);
    } catch (err) {
      return this.failProtocol((err as Error).message);
    }
    for (const frame of frames) {
      this.onFrame(frame);
      if (this.closedBy) return;
    }
  }

  private onFrame(frame: Frame): void {
    const req = this.onWire[0];
    const sentBefore = this.framesSent;
    if (frame.kind === ERROR_KIND && frame.requestId !== req?.requestId) {
      // E.g. BAD_FRAME, sent when the agent could not read our request id: report its words, then hang up.
      let what = '(malformed payload)';
      try {
        const e = decodeError(frame.payload);
        what = `${errorCodeName(e.errorCode)}: ${e.message}`;
      } catch {
        // keep the placeholder: the frame itself is already the protocol failure being reported
      }
      const during = req ? `while ${req.item.command} (request ${req.requestId}) was outstanding` : 'unsolicited';
      return this.failProtocol(`agent on ${this.label} sent ERROR ${what} for request ${frame.requestId}, ${during}`);
    }
    if (!req) {
      return this.failProtocol(`agent on ${this.label} sent an unsolicited ${kindName(frame.kind)} frame`);
    }
    if (frame.requestId !== req.requestId) {
      return this.failProtocol(
        `agent on ${this.label} answered request ${frame.requestId} while request ${req.requestId} ` +
          `(${req.item.command}) was outstanding`,
      );
    }
    if (frame.kind === ERROR_KIND) {
      let code: number;
      let message: string;
      try {
        ({ errorCode: code, message } = decodeError(frame.payload));
      } catch (err) {
        return this.failProtocol(`agent on ${this.label} sent a malformed ERROR: ${(err as Error).message}`);
      }
      const error = new AgentError(this.label, req.item.command, code, errorCodeName(code), message);
      this.finish(req);
      req.item.reject(error);
      if (error.closesConnection) {
        this.fail(
          new AgentConnectionError(
            'closed',
            this.label,
            `agent on ${this.label} closed the connection after its ${error.codeName} error: ${message}`,
          ),
        );
      } else {
        this.pump();
        this.acknowledgeSoon(sentBefore);
      }
      return;
    }
    const expectedKind = COMMAND_CODES[req.item.command] | REPLY_BIT;
    if (frame.kind !== expectedKind) {
      return this.failProtocol(
        `agent on ${this.label} answered ${req.item.command} (request ${req.requestId}) ` +
          `with a ${kindName(frame.kind)} frame`,
      );
    }
    let reply: unknown;
    try {
      reply = decodeReply(req.item.command, frame.payload);
    } catch (err) {
      return this.failProtocol(`agent on ${this.label} sent a malformed reply: ${(err as Error).message}`);
    }
    this.finish(req);
    req.item.resolve(reply);
    this.pump();
    this.acknowledgeSoon(sentBefore);
  }

  private onStreamClosed(): void {
    if (this.closedBy) return;
    const req = this.onWire[0];
    const truncated = this.parser.truncation();
    const detail = truncated ? ` (${truncated})` : '';
    const during = req ? ` during ${req.item.command} (request ${req.requestId})` : '';
    const message = `agent on ${this.label} closed the connection${during}${detail}`;
    this.fail(new AgentConnectionError('closed', this.label, message));
  }

  private onStreamError(err: Error): void {
    if (this.closedBy) return;
    const req = this.onWire[0];
    const during = req ? ` during ${req.item.command} (request ${req.requestId})` : '';
    const message = `connection to agent on ${this.label} failed${during}: ${err.message}`;
    this.fail(new AgentConnectionError('stream-error', this.label, message));
  }

  private onAbort(item: Queued): void {
    if (this.onWire.some((w) => w.item === item)) {
      // The request is on the wire: its reply would arrive later and desynchronise the session, so end it.
      this.fail(
        new AgentConnectionError(
          'aborted',
          this.label,
          `${item.command} to agent on ${this.label} was aborted while in flight; the connection was closed`,
        ),
      );
      return;
    }
    const at = this.queue.indexOf(item);
    if (at >= 0) {
      this.queue.splice(at, 1);
      this.settle(item);
      item.reject(this.abortError(item.command, 'while it waited in the queue'));
    }
  }

  private abortError(command: CommandName, when: string): AgentConnectionError {
    return new AgentConnectionError('aborted', this.label, `${command} to agent on ${this.label} was aborted ${when}`);
  }

  private afterClose(command: CommandName): AgentConnectionError {
    const why = this.closedBy!;
    return new AgentConnectionError(why.reason, this.label, `cannot send ${command}: ${why.message}`);
  }

  private failProtocol(message: string): void {
    this.fail(new AgentConnectionError('protocol', this.label, `${message}; the connection was closed`));
  }

  private settle(item: Queued): void {
    if (item.onAbort) item.opts.signal?.removeEventListener('abort', item.onAbort);
  }

  /** Takes the answered head off the wire and starts the next one's timeout. */
  private finish(req: InFlight): void {
    clearTimeout(req.timer);
    this.settle(req.item);
    this.onWire.shift();
    this.armHead();
  }

  /** Marks the connection dead (first reason wins), rejects everything outstanding, destroys the stream. */
  private fail(reason: AgentConnectionError): void {
    if (this.closedBy) return;
    this.closedBy = reason;
    clearInterval(this.keepAliveTimer);
    // The head is told the reason itself; the ones sent behind it were never answered, the queued ones never sent.
    const [head, ...behind] = this.onWire.splice(0);
    if (head) {
      clearTimeout(head.timer);
      this.settle(head.item);
      head.item.reject(reason);
    }
    for (const { item, requestId } of behind) {
      this.settle(item);
      item.reject(new AgentConnectionError(reason.reason, this.label, `${item.command} (request ${requestId}) was not answered: ${reason.message}`));
    }
    for (const item of this.queue.splice(0)) {
      this.settle(item);
      item.reject(this.afterClose(item.command));
    }
    this.stream.destroy();
    this.resolveClosed(reason);
  }
}

function defaultLabel(stream: Duplex): string {
  const s = stream as { remoteAddress?: string; remotePort?: number };
  return s.remoteAddress ? `${s.remoteAddress}:${s.remotePort ?? '?'}` : 'an unlabelled stream';
}
