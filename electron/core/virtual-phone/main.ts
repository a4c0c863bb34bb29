// Process entry of one virtual phone: parses flags, starts a VirtualPhone, prints
// `virtual-phone ready 127.0.0.1:PORT`, serves until SIGTERM/SIGINT (or until --parent-pid dies). SIGUSR2 is the
// user tapping "Allow" on a phone started with --unauthorized. Not a library.
import { VirtualPhone } from './phone.js';

function usage(message: string): never {
  process.stderr.write(`virtual-phone: ${message}\n` +
    'usage: node main.js --port P --sandbox DIR --ram-mb N --cores N --name NAME [--serial S] [--parent-pid PID]\n' +
    '         [--cpu-max-khz K1,K2,...] [--soc NAME] [--battery-percent N] [--battery-temp-c C] [--charging 0|1]\n' +
    '         [--unauthorized] [--verbose]\n');
  process.exit(2);
}

function parseArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) usage(`unexpected argument "${a}"`);
    if (a === '--verbose' || a === '--unauthorized') { out.set(a.slice(2), '1'); continue; }
    const v = argv[i + 1];
    if (v === undefined) usage(`${a} needs a value`);
    out.set(a.slice(2), v);
    i++;
  }
  return out;
}

function intArg(args: Map<string, string>, name: string, fallback?: number): number {
  const text = args.get(name);
  if (text === undefined) {
    if (fallback === undefined) usage(`--${name} is required`);
    return fallback;
  }
  if (!/^\d+$/.test(text)) usage(`--${name} must be a whole number, got "${text}"`);
  return Number(text);
}

function numberArg(args: Map<string, string>, name: string): number | undefined {
  const text = args.get(name);
  if (text === undefined) return undefined;
  if (!/^-?\d+(\.\d+)?$/.test(text)) usage(`--${name} must be a number, got "${text}"`);
  return Number(text);
}

function listArg(args: Map<string, string>, name: string, cores: number): number[] | undefined {
  const text = args.get(name);
  if (text === undefined) return undefined;
  const values = text.split(',').map((t) => t.trim());
  if (values.some((v) => !/^\d+$/.test(v))) usage(`--${name} must be kHz values separated by commas, got "${text}"`);
  // One value stands for every core.
  return values.length === 1 ? Array(cores).fill(Number(values[0])) as number[] : values.map(Number);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const sandbox = args.get('sandbox') ?? usage('--sandbox is required');
  const name = args.get('name') ?? 'Virtual Phone';
  const port = intArg(args, 'port', 0);
  const verbose = args.has('verbose') || process.env.CONFIDANT_VPHONE_VERBOSE === '1';
  const cores = intArg(args, 'cores', 4);
  const charging = args.get('charging');
  if (charging !== undefined && charging !== '0' && charging !== '1') usage(`--charging must be 0 or 1, got "${charging}"`);
  const phone = new VirtualPhone({
    port,
    sandboxDir: sandbox,
    ramBytes: intArg(args, 'ram-mb') * 1024 * 1024,
    cores,
    cpuMaxFreqsKHz: listArg(args, 'cpu-max-khz', cores),
    socModel: args.get('soc'),
    batteryPercent: numberArg(args, 'battery-percent'),
    batteryTemperatureC: numberArg(args, 'battery-temp-c'),
    batteryCharging: charging === undefined ? undefined : charging === '1',
    unauthorized: args.has('unauthorized'),
    modelName: name,
    serialNumber: args.get('serial') ?? `CONFV${String(port).padStart(5, '0')}`,
    log: verbose ? (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`) : undefined,
  });
  const bound = await phone.start();
  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    if (verbose) process.stderr.write(`virtual-phone: stopping (${why})\n`);
    await phone.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => void stop('SIGHUP'));
  // SIGUSR2, not SIGUSR1: Node starts its inspector on SIGUSR1.
  process.on('SIGUSR2', () => phone.authorize());
  const parentPid = args.has('parent-pid') ? intArg(args, 'parent-pid') : 0;
  if (parentPid > 0) {
    // Tests and the demo pass their pid: if they die without stopping us, we do not outlive them.
    setInterval(() => {
      try { process.kill(parentPid, 0); } catch { void stop(`parent ${parentPid} is gone`); }
    }, 1000).unref();
  }
  process.stdout.write(`virtual-phone ready 127.0.0.1:${bound}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`virtual-phone: ${(err as Error).message}\n`);
  process.exit(1);
});
