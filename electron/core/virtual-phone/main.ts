// Process entry of one virtual phone: parses flags, starts a VirtualPhone, prints
// `virtual-phone ready 127.0.0.1:PORT`, serves until SIGTERM/SIGINT (or until --parent-pid dies). Not a library.
import { VirtualPhone } from './phone.js';

function usage(message: string): never {
  process.stderr.write(`virtual-phone: ${message}\n` +
    'usage: node main.js --port P --sandbox DIR --ram-mb N --cores N --name NAME [--serial S] [--parent-pid PID] [--verbose]\n');
  process.exit(2);
}

function parseArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) usage(`unexpected argument "${a}"`);
    if (a === '--verbose') { out.set('verbose', '1'); continue; }
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

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const sandbox = args.get('sandbox') ?? usage('--sandbox is required');
  const name = args.get('name') ?? 'Virtual Phone';
  const port = intArg(args, 'port', 0);
  const verbose = args.has('verbose') || process.env.CONFIDANT_VPHONE_VERBOSE === '1';
  const phone = new VirtualPhone({
    port,
    sandboxDir: sandbox,
    ramBytes: intArg(args, 'ram-mb') * 1024 * 1024,
    cores: intArg(args, 'cores', 4),
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
