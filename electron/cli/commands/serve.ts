// `confidant serve`: the app's UI and API for a browser, bound to 127.0.0.1 with a token printed at start.
import { parseArgs } from 'node:util';
import { findRepoRoot } from '../../core/paths.js';
import { serve } from '../../server/serve.js';

export async function serveCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { port: { type: 'string' }, host: { type: 'string' }, 'adb-port': { type: 'string' }, adb: { type: 'string', multiple: true } } });
  await serve({
    repoRoot: findRepoRoot(),
    host: values.host,
    port: values.port ? Number(values.port) : undefined,
    adbPort: values['adb-port'] ? Number(values['adb-port']) : undefined,
    adbServers: values.adb, // checked by the service: a bad one is an error before anything starts
  });
  await new Promise(() => undefined); // serve until SIGINT/SIGTERM (handled by serve())
}
