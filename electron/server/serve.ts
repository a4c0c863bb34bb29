// `confidant serve`: creates the real core service and the headless server, prints the tokenised URL like a notebook
// server, and shuts both down on SIGINT/SIGTERM. Meant to be called by the CLI (bin/confidant.js); it parses no argv.
import { join } from 'node:path';
import { createService } from '../core/service.js';
import { startServer, type RunningServer } from './server.js';

export interface ServeOptions {
  repoRoot: string;
  host?: string;
  port?: number;
  adbPort?: number;
  /** Other adb servers ("host:port") whose phones are listed and trained on too. */
  adbServers?: string[];
  print?: (line: string) => void;
}

export async function serve(opts: ServeOptions): Promise<RunningServer & { stop(): Promise<void> }> {
  const print = opts.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const service = await createService({ repoRoot: opts.repoRoot, adbPort: opts.adbPort, adbServers: opts.adbServers });
  let server: RunningServer;
  try {
    server = await startServer({
      service,
      host: opts.host,
      port: opts.port,
      staticDir: join(opts.repoRoot, 'build', 'renderer'),
      log: (line) => print(`[serve] ${line}`),
    });
  } catch (err) {
    await service.dispose();
    throw err;
  }
  if (opts.host && opts.host !== '127.0.0.1' && opts.host !== '::1' && opts.host !== 'localhost') {
    print(`WARNING: listening on ${opts.host}: anyone who can reach this port and knows the token controls training.`);
  }
  print('Confidant is running. Open this URL in your browser (it contains the access token):');
  print(`    ${server.url}`);

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      await server.close();
      await service.dispose();
    })();
    return stopping;
  };
  const onSignal = () => {
    print('Shutting down...');
    void stop().then(() => process.exit(0));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return { ...server, stop };
}
