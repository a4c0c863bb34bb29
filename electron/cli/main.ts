// The `confidant` command line: dispatches to one subcommand per file in commands/. Errors are printed as
// sentences a person can act on, with exit status 1 (2 for a usage mistake); no stack traces for expected failures.
import { UsageError } from './args.js';
import { devicesCommand } from './commands/devices.js';
import { virtualCommand } from './commands/virtual.js';
import { trainCommand } from './commands/train.js';
import { planCommand } from './commands/plan.js';
import { dataCommand } from './commands/data.js';
import { exportCommand } from './commands/export.js';
import { demoCommand } from './commands/demo.js';
import { serveCommand } from './commands/serve.js';
import { generateCommand } from './commands/generate.js';
import { stopAllAdbAgents } from '../core/deploy/adb-deployer.js';

const USAGE = `usage: confidant <command> [options]

  devices [--json] [--adb host:port]... [--agent] [--clean]
                                           phones seen by adb (the local server and each --adb), with guidance for
                                           unready ones; ids are host:port/serial; --agent asks each phone's agent
                                           for its CPU SIMD level and OpenCL device; --clean removes Confidant's
                                           agents and files from each ready phone
  virtual start|stop|list|authorize        virtual phones attached to adb (--count N --ram 3GiB --cores 4
                                           --unauthorized --adb host:port)
  train [--model DIR] [--data FILE] [--devices a,b] [--adb host:port]... [--steps N] [--json]
        [--weight-format f32|f16|int8|q4_0|fp4] [--rank R] [--lr X] [--seq-len T]
        [--micro-batches M] [--micro-batch-size B] [--seed S] [--runs-dir DIR]
        [--data-format auto|text|jsonl|csv] [--prompt-column C --completion-column C | --text-column C]
        [--skip-bad-rows] [--remove-stage-files] [--mode backprop|zo] [--zo-queries Q] [--zo-eps E]
        [--zo-queries-per-op D] [--checkpoint-every N] [--relay f16|f32] | train --resume runs/<id>
  plan [--model DIR|FILE.gguf] [--devices a,b] [--adb host:port]... [--seq-len T] [--micro-batches M] [--micro-batch-size B] [--weight-format f] [--mode backprop|zo] [--queries Q] [--queries-per-op D] [--json]
  data preview --data FILE [--model DIR] [dataset options as for train] [--seq-len T] [--examples N] [--json]
                                           how the file will be trained on: format, bad rows by line, stats,
                                           the first rows with the trained part marked
  export --run runs/<id> --format peft|gguf|merged --out PATH [--overwrite] [--model DIR] [--dtype f32|f16]
  generate [--model DIR] [--run runs/<id>] --prompt "..." [--max-new-tokens N] [--temperature T] [--top-p P] [--seed S]
                                           continue a prompt with onnxruntime on this machine (base or base + adapter)
  demo [--steps N] [--json]                the built-in demo: 2 virtual phones, bundled model and stories
  serve [--port N] [--host 127.0.0.1] [--adb host:port]...
                                           the app's UI and API for a browser, with a token`;

const COMMANDS: Record<string, (argv: string[]) => Promise<unknown>> = {
  devices: devicesCommand,
  virtual: virtualCommand,
  train: trainCommand,
  plan: planCommand,
  data: dataCommand,
  export: exportCommand,
  demo: demoCommand,
  serve: serveCommand,
  generate: generateCommand,
};

// Commands that start agents on phones: Ctrl-C (or SIGTERM) stops those agents before the process exits, since an
// agent that lost its host only exits after its idle timeout. (serve handles its own signals.)
const STARTS_AGENTS = new Set(['train', 'demo']);

function stopAgentsOnSignal(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`confidant: ${signal}: stopping the agents on the phones`);
      void stopAllAdbAgents().finally(() => process.exit(130));
    });
  }
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const command = name ? COMMANDS[name] : undefined;
  if (!command) {
    console.error(name && name !== '--help' && name !== 'help' ? `confidant: unknown command "${name}"\n\n${USAGE}` : USAGE);
    return name && name !== '--help' && name !== 'help' ? 2 : 0;
  }
  if (STARTS_AGENTS.has(name!)) stopAgentsOnSignal();
  try {
    await command(rest);
    return 0;
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (e instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
      console.error(`confidant ${name}: ${(e as Error).message}`);
      return 2;
    }
    console.error(`confidant ${name}: ${(e as Error).message}`);
    if (process.env.CONFIDANT_DEBUG) console.error(e);
    return 1;
  }
}
