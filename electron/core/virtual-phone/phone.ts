// One virtual phone: a loopback TCP listener that speaks the device side of the ADB transport (attach it with
// `adb connect 127.0.0.1:PORT`), serving shell, sync and tcp inside its sandbox. It may start unauthorized (adb
// lists it as "unauthorized" until authorize(), the user tapping "Allow"). Not a process entry (main.ts).
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { SANDBOX_MARKER_ENV, findSandboxProcesses, killSandboxProcesses, residentBytes } from './reap.js';
import { checkSandboxDir, defaultCpuMaxFreqsKHz, prepareSandbox, writeMeminfo, type PhoneIdentity } from './sandbox.js';
import { openShell } from './services/shell.js';
import { openSync } from './services/sync.js';
import { openTcp } from './services/tcp.js';
import { DeviceTransport, type ServiceStream, type StreamHandler } from './transport.js';
import { MAX_PAYLOAD_BYTES_LIMIT } from './adb-message.js';

export interface VirtualPhoneOptions {
  /** Loopback port to listen on; 0 picks a free one (read `port` after start()). */
  port: number;
  sandboxDir: string;
  ramBytes: number;
  cores: number;
  /** ro.product.model, e.g. "Virtual Phone 1". */
  modelName: string;
  /** ro.serialno. */
  serialNumber: string;
  /** cpuinfo_max_freq per core in kHz (length = cores); default: big.LITTLE clusters from the core count. */
  cpuMaxFreqsKHz?: number[];
  /** ro.soc.model (default "Virtual x86_64 SoC"). */
  socModel?: string;
  batteryPercent?: number;
  batteryTemperatureC?: number;
  batteryCharging?: boolean;
  /** Start without authorising any host: adb shows "unauthorized" until authorize() (default false). */
  unauthorized?: boolean;
  log?: (line: string) => void;
}

export class VirtualPhone {
  readonly sandboxDir: string;
  private server: Server | null = null;
  private readonly transports = new Set<DeviceTransport>();
  private readonly sockets = new Set<Socket>();
  /** Process groups of running shells (each shell is its own group leader). */
  private readonly shellGroups = new Set<number>();
  private readonly identity: PhoneIdentity;
  private boundPort = 0;
  private authorized: boolean;

  constructor(private readonly options: VirtualPhoneOptions) {
    this.sandboxDir = checkSandboxDir(options.sandboxDir);
    if (!(options.ramBytes > 0)) throw new Error(`virtual phone RAM must be positive, got ${options.ramBytes} bytes`);
    if (!(Number.isInteger(options.cores) && options.cores >= 1)) throw new Error(`virtual phone cores must be a whole number >= 1, got ${options.cores}`);
    const freqs = options.cpuMaxFreqsKHz ?? defaultCpuMaxFreqsKHz(options.cores);
    if (freqs.length !== options.cores || freqs.some((f) => !(Number.isInteger(f) && f > 0))) {
      throw new Error(`virtual phone needs one positive max frequency (kHz) per core: ${options.cores} cores, got [${freqs.join(', ')}]`);
    }
    this.identity = {
      modelName: options.modelName,
      serialNumber: options.serialNumber,
      ramBytes: options.ramBytes,
      cores: options.cores,
      cpuMaxFreqsKHz: freqs,
      socModel: options.socModel ?? 'Virtual x86_64 SoC',
      batteryPercent: options.batteryPercent ?? 100,
      batteryTemperatureC: options.batteryTemperatureC ?? 30,
      batteryCharging: options.batteryCharging ?? true,
    };
    this.authorized = !options.unauthorized;
  }

  get isAuthorized(): boolean {
    return this.authorized;
  }

  /** The user allowed debugging: every host waiting at the prompt is connected, and later hosts are accepted. */
  authorize(): void {
    if (this.authorized) return;
    this.authorized = true;
    this.log('debugging allowed: accepting waiting hosts');
    for (const t of this.transports) t.authorizationGranted();
  }

  get port(): number {
    return this.boundPort;
  }

  /** Lays out the sandbox and listens on 127.0.0.1 only; resolves with the bound port. */
  async start(): Promise<number> {
    prepareSandbox(this.sandboxDir, this.identity);
    const server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: this.options.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const addr = server.address();
    this.boundPort = typeof addr === 'object' && addr ? addr.port : this.options.port;
    this.log(`listening on 127.0.0.1:${this.boundPort}, sandbox ${this.sandboxDir}`);
    return this.boundPort;
  }

  /** Closes the listener and every connection, then kills every process the phone started (detached too). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    for (const t of this.transports) t.shutdown();
    for (const s of this.sockets) s.destroy();
    this.transports.clear();
    this.sockets.clear();
    const killed = await killSandboxProcesses(this.sandboxDir, 1500, [...this.shellGroups]);
    this.shellGroups.clear();
    if (killed.length > 0) this.log(`stopped ${killed.length} process(es): ${killed.join(', ')}`);
  }

  private log(line: string): void {
    this.options.log?.(`[${this.options.modelName}] ${line}`);
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    const transport = new DeviceTransport(socket, {
      banner: { productName: 'vphone_x86_64', model: this.options.modelName.replace(/\s+/g, '_'), device: 'vphone_x86_64', features: [] },
      openService: (service, stream) => this.openService(service, stream),
      maxPayloadBytes: MAX_PAYLOAD_BYTES_LIMIT, // what adbd offers since Android 9: fewer WRTE/OKAY round trips per MiB
      isAuthorized: () => this.authorized,
      log: (line) => this.log(line),
    });
    this.transports.add(transport);
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.transports.delete(transport);
    });
  }

  private shellEnv(): NodeJS.ProcessEnv {
    const sandbox = this.sandboxDir;
    return {
      PATH: `${join(sandbox, 'system/bin')}:/usr/local/bin:/usr/bin:/bin`,
      HOME: join(sandbox, 'data/local/tmp'),
      TMPDIR: join(sandbox, 'data/local/tmp'),
      ANDROID_DATA: join(sandbox, 'data'),
      EXTERNAL_STORAGE: join(sandbox, 'sdcard'),
      LANG: 'C.UTF-8',
      // The agent reads its temperature from the thermal zones itself (a path in the binary, which the command
      // rewriting cannot reach): this points it at the phone's own zones (sandbox.ts writeCpuAndThermal).
      CONFIDANT_THERMAL_ROOT: join(sandbox, 'sys/class/thermal'),
      [SANDBOX_MARKER_ENV]: sandbox,
    };
  }

  /** MemAvailable = 85% of the budget minus what the phone's own processes hold resident. */
  private refreshMeminfo(): void {
    const used = residentBytes(findSandboxProcesses(this.sandboxDir));
    writeMeminfo(this.sandboxDir, this.identity.ramBytes, Math.max(0, Math.floor(this.identity.ramBytes * 0.85) - used));
  }

  private openService(service: string, stream: ServiceStream): Promise<StreamHandler | null> | StreamHandler | null {
    const colon = service.indexOf(':');
    const kind = colon >= 0 ? service.slice(0, colon) : service;
    const rest = colon >= 0 ? service.slice(colon + 1) : '';
    switch (kind) {
      case 'shell':
      case 'exec':
        return openShell(rest, stream, {
          sandboxDir: this.sandboxDir,
          env: this.shellEnv(),
          onSpawn: (pid) => this.shellGroups.add(pid),
          onExit: (pid) => this.shellGroups.delete(pid),
          beforeRun: () => this.refreshMeminfo(),
        });
      case 'sync':
        return openSync(stream, this.sandboxDir);
      case 'tcp':
        return openTcp(rest, stream, (line) => this.log(line));
      default:
        // shell,v2 / root: / reboot: / localabstract: ... are not offered; adb reports the stream as closed.
        this.log(`refusing unsupported service "${service}"`);
        return null;
    }
  }
}
