// Live device discovery on adb servers: adbkit's trackDevices per server, each phone described when it becomes
// ready, and the tracker rebuilt with back-off when the server goes away (kill-server, crash, reboot of the host),
// reporting "unavailable, retrying in N s" meanwhile. A restarted server has forgotten its `adb connect`ed phones,
// so those are connected again. Not a one-shot listing (devices.ts) and not a server starter: it never starts adb.
import { EventEmitter } from 'node:events';
import type { Client } from '@devicefarmer/adbkit';
import type { AdbServerStatus, DeviceInfo } from '../api/types.js';
import type { Adb } from './client.js';
import { blankDeviceInfo, deviceInfoFor } from './devices.js';
import { guidanceForState, isTcpSerial } from './parse.js';
import { serverKey } from './servers.js';

export interface WatchOptions {
  /** First retry delay after the server went away (default 250 ms); doubled after each failure up to maxRetryMs. */
  initialRetryMs?: number;
  /** Longest delay between attempts (default 8 s). */
  maxRetryMs?: number;
  /** After the server came back, `adb connect` again the TCP phones it had before (default true). */
  reconnectTcp?: boolean;
  /** Per shell probe of a phone (default 15 s). */
  describeTimeoutMs?: number;
  /** Attempts to describe a phone that is ready but does not answer yet (default 3, 1 s apart). */
  describeAttempts?: number;
  log?: (line: string) => void;
}

interface Entry {
  state: string;
  info: DeviceInfo | null;
  describedAtMs: number;
  /** Bumped at each state change, so a slow probe of an older state cannot overwrite a newer one. */
  generation: number;
  pending: Promise<void> | null;
}

/** adbkit does not export its Tracker type from the package root. */
type Tracker = Awaited<ReturnType<Client['trackDevices']>>;
interface TrackedDevice {
  id: string;
  type: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const seconds = (ms: number) => `${ms < 1000 ? (ms / 1000).toFixed(2) : (ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;

/**
 * Follows one adb server. Events: 'devices' (DeviceInfo[], after every change), 'status' (AdbServerStatus, when
 * the server's state or message changes), 'reconnected' (the TCP serials connected again after a restart).
 */
export class DeviceWatcher extends EventEmitter {
  readonly server: string;
  private tracker: Tracker | null = null;
  private readonly entries = new Map<string, Entry>();
  private status: AdbServerStatus;
  private retryMs: number;
  private retryTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private started = false;
  /** TCP serials the server had when it went away: connected again once it is back. */
  private readonly toReconnect = new Set<string>();
  private readonly opts: Required<Omit<WatchOptions, 'log'>> & Pick<WatchOptions, 'log'>;

  constructor(readonly adb: Adb, options: WatchOptions = {}) {
    super();
    this.server = serverKey(adb.endpoint);
    this.opts = {
      initialRetryMs: options.initialRetryMs ?? 250,
      maxRetryMs: options.maxRetryMs ?? 8000,
      reconnectTcp: options.reconnectTcp ?? true,
      describeTimeoutMs: options.describeTimeoutMs ?? 15_000,
      describeAttempts: options.describeAttempts ?? 3,
      log: options.log,
    };
    this.retryMs = this.opts.initialRetryMs;
    this.status = { server: this.server, state: 'connecting', message: `connecting to the adb server at ${this.server}`, retryInMs: null };
    // EventEmitter throws on an unhandled 'error'; this class never emits one, but be explicit about it.
    this.on('error', () => undefined);
  }

  start(): this {
    if (!this.started) {
      this.started = true;
      void this.connect();
    }
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const tracker = this.tracker;
    this.tracker = null;
    tracker?.end();
    await this.settled(5000);
  }

  serverStatus(): AdbServerStatus {
    return { ...this.status };
  }

  /** The current list, by serial. A ready phone still being described shows as ready with no properties yet. */
  devices(): DeviceInfo[] {
    return [...this.entries.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([serial, e]) => e.info ?? blankDeviceInfo(serial, e.state, 'Reading the phone\'s properties…', this.server));
  }

  /** Resolves when no probe is running (or after timeoutMs). */
  async settled(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const pending = [...this.entries.values()].map((e) => e.pending).filter((p): p is Promise<void> => p !== null);
      if (pending.length === 0 || Date.now() > deadline) return;
      await Promise.race([Promise.all(pending), sleep(Math.max(0, deadline - Date.now()))]);
    }
  }

  /** Describes again the ready phones read more than maxAgeMs ago (RAM, battery and temperatures move). */
  async refresh(maxAgeMs = 0): Promise<void> {
    const now = Date.now();
    for (const [serial, e] of this.entries) {
      if (e.state === 'device' && !e.pending && now - e.describedAtMs > maxAgeMs) this.describe(serial, e);
    }
    await this.settled();
  }

  /** Resolves with the list once `predicate` holds (checked after every change); rejects after timeoutMs. */
  waitFor(predicate: (devices: DeviceInfo[], status: AdbServerStatus) => boolean, timeoutMs: number, what = 'devices'): Promise<DeviceInfo[]> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const list = this.devices();
        if (!predicate(list, this.status)) return;
        cleanup();
        resolve(list);
      };
      const timer = setTimeout(() => {
        cleanup();
        const seen = this.devices().map((d) => `${d.serial}: ${d.state}`).join(', ') || 'none';
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} on adb server ${this.server} ` +
          `(server ${this.status.state}${this.status.message ? `: ${this.status.message}` : ''}; devices: ${seen})`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('devices', check);
        this.off('status', check);
      };
      this.on('devices', check);
      this.on('status', check);
      check();
    });
  }

  private log(line: string): void {
    this.opts.log?.(`[adb ${this.server}] ${line}`);
  }

  private setStatus(status: Omit<AdbServerStatus, 'server'>): void {
    const next = { server: this.server, ...status };
    if (next.state === this.status.state && next.message === this.status.message) return;
    this.status = next;
    this.log(`${next.state}${next.message ? `: ${next.message}` : ''}`);
    this.emit('status', this.serverStatus());
  }

  private emitDevices(): void {
    this.emit('devices', this.devices());
  }

  private async connect(): Promise<void> {
    this.retryTimer = null;
    if (this.stopped) return;
    let tracker: Tracker;
    try {
      tracker = await this.adb.call<Tracker>(`adb track-devices (server ${this.server})`, () => this.adb.client.trackDevices(), 5000);
    } catch (err) {
      this.lost(err);
      return;
    }
    if (this.stopped) {
      tracker.end();
      return;
    }
    this.tracker = tracker;
    let lastError: unknown = null;
    tracker.on('error', (err: unknown) => (lastError = err));
    tracker.on('end', () => {
      if (this.tracker === tracker) this.lost(lastError ?? new Error('the server closed the connection'));
    });
    tracker.on('changeSet', (cs: { added: TrackedDevice[]; changed: TrackedDevice[]; removed: TrackedDevice[] }) => {
      if (this.tracker !== tracker) return;
      for (const d of cs.removed) this.entries.delete(d.id);
      for (const d of [...cs.added, ...cs.changed]) this.setState(d.id, String(d.type));
      this.emitDevices();
    });
    // The server's first list can be read (and its changeSet emitted) before the promise above hands us the
    // tracker, so start from the list the tracker already holds; later changes arrive as changeSets.
    const known = (tracker as unknown as { deviceList?: TrackedDevice[] }).deviceList;
    for (const d of Array.isArray(known) ? known : []) this.setState(d.id, String(d.type));
    this.retryMs = this.opts.initialRetryMs;
    this.setStatus({ state: 'ready', message: '', retryInMs: null });
    this.emitDevices();
    void this.reconnectTcp();
  }

  private setState(serial: string, state: string): void {
    let e = this.entries.get(serial);
    if (!e) {
      e = { state, info: null, describedAtMs: 0, generation: 0, pending: null };
      this.entries.set(serial, e);
    } else if (e.state === state) {
      return;
    }
    e.state = state;
    e.generation++;
    e.pending = null;
    // Guidance needs no round trip; a ready phone is described by a shell probe.
    e.info = state === 'device' ? null : blankDeviceInfo(serial, state, guidanceForState(state, serial, this.server), this.server);
    if (state === 'device') this.describe(serial, e);
  }

  private describe(serial: string, e: Entry): void {
    const generation = e.generation;
    const run = async () => {
      for (let attempt = 1; ; attempt++) {
        const info = await deviceInfoFor(this.adb, serial, 'device', this.opts.describeTimeoutMs);
        if (this.entries.get(serial) !== e || e.generation !== generation || this.stopped) return;
        // A phone that was just attached may not take a shell for a moment: try again before reporting it.
        const answered = info.abis.length > 0 || !/did not answer/.test(info.guidance);
        if (answered || attempt >= this.opts.describeAttempts) {
          e.info = info;
          e.describedAtMs = Date.now();
          this.emitDevices();
          return;
        }
        await sleep(1000);
      }
    };
    const pending = run().finally(() => {
      if (e.pending === pending) e.pending = null;
    });
    e.pending = pending;
  }

  private lost(err: unknown): void {
    if (this.stopped) return;
    this.tracker = null;
    for (const serial of this.entries.keys()) if (isTcpSerial(serial)) this.toReconnect.add(serial);
    const hadDevices = this.entries.size > 0;
    this.entries.clear();
    if (hadDevices) this.emitDevices();
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, this.opts.maxRetryMs);
    const reason = (err as Error)?.message ?? String(err);
    this.setStatus({ state: 'unavailable', message: `adb server ${this.server} unavailable, retrying in ${seconds(delay)}: ${reason}`, retryInMs: delay });
    this.retryTimer = setTimeout(() => void this.connect(), delay);
    this.retryTimer.unref?.();
  }

  private async reconnectTcp(): Promise<void> {
    if (!this.opts.reconnectTcp || this.toReconnect.size === 0) return;
    const serials = [...this.toReconnect];
    this.toReconnect.clear();
    const done: string[] = [];
    for (const serial of serials) {
      const m = /^(.*):(\d+)$/.exec(serial);
      if (!m) continue;
      const host = m[1]!.replace(/^\[(.*)\]$/, '$1');
      try {
        await this.adb.call(`adb connect ${serial}`, () => this.adb.client.connect(host, Number(m[2])), 10_000);
        done.push(serial);
      } catch (err) {
        // "failed to authenticate" still attaches the phone (as unauthorized); anything else means it is gone.
        if (/failed to authenticate/.test((err as Error).message)) done.push(serial);
        else this.log(`could not reconnect ${serial}: ${(err as Error).message}`);
      }
    }
    this.log(`reconnected after the server came back: ${done.join(', ') || 'none'}`);
    this.emit('reconnected', done);
  }
}

/** Several servers watched together: one list of devices (each with its server and id) and one status per server. */
export class DeviceWatchers extends EventEmitter {
  readonly watchers: DeviceWatcher[];

  constructor(adbs: Adb[], options: WatchOptions = {}) {
    super();
    this.watchers = adbs.map((adb) => new DeviceWatcher(adb, options));
    for (const w of this.watchers) {
      w.on('devices', () => this.emit('devices', this.devices()));
      w.on('status', (s: AdbServerStatus) => this.emit('status', s));
    }
  }

  start(): this {
    for (const w of this.watchers) w.start();
    return this;
  }

  async stop(): Promise<void> {
    await Promise.all(this.watchers.map((w) => w.stop()));
  }

  devices(): DeviceInfo[] {
    return this.watchers.flatMap((w) => w.devices());
  }

  statuses(): AdbServerStatus[] {
    return this.watchers.map((w) => w.serverStatus());
  }

  async settled(timeoutMs?: number): Promise<void> {
    await Promise.all(this.watchers.map((w) => w.settled(timeoutMs)));
  }

  async refresh(maxAgeMs?: number): Promise<void> {
    await Promise.all(this.watchers.map((w) => w.refresh(maxAgeMs)));
  }

  /** Waits until every server has answered once or reported itself unavailable. */
  async firstContact(timeoutMs: number): Promise<void> {
    await Promise.all(this.watchers.map((w) => w.waitFor((_d, s) => s.state !== 'connecting', timeoutMs, 'the first device list')));
  }
}
