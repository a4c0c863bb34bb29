// llama.cpp as an independent peer for tests and benchmarks, through node-llama-cpp's prebuilt CPU binary
// (@node-llama-cpp/linux-x64 etc.), loaded offline: never downloads or builds. Not used by the app itself.
import type { Llama } from 'node-llama-cpp';

export type NodeLlamaCpp = typeof import('node-llama-cpp');

let loaded: Promise<{ lib: NodeLlamaCpp; llama: Llama } | string> | undefined;

/**
 * The llama.cpp binding with the CPU backend, or a skip reason when the prebuilt binary cannot be loaded.
 * node-llama-cpp reads its settings from the environment when first imported, so they are set before the import:
 * no download of llama.cpp sources, no GPU probing, no build.
 */
export function loadLlamaCpp(): Promise<{ lib: NodeLlamaCpp; llama: Llama } | string> {
  loaded ??= (async () => {
    process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = 'true';
    process.env.NODE_LLAMA_CPP_GPU = 'false';
    process.env.NODE_LLAMA_CPP_LOG_LEVEL = 'warn';
    try {
      const lib = await import('node-llama-cpp');
      const llama = await lib.getLlama({
        gpu: false,
        build: 'never',
        usePrebuiltBinaries: true,
        skipDownload: true,
        progressLogs: false,
        logLevel: lib.LlamaLogLevel.error,
        // 0 = no cap of node-llama-cpp's own: the thread count each context asks for is used as given.
        maxThreads: 0,
      });
      return { lib, llama };
    } catch (err) {
      return `node-llama-cpp cannot load its prebuilt llama.cpp binary offline: ${(err as Error).message}`;
    }
  })();
  return loaded;
}

/** Like loadLlamaCpp, but prints a loud skip line (and throws in CI, which must not skip). */
export async function needLlamaCpp(): Promise<{ lib: NodeLlamaCpp; llama: Llama } | string> {
  const r = await loadLlamaCpp();
  if (typeof r === 'string') {
    if (process.env.CI === 'true') throw new Error(`CI must not skip: ${r}`);
    process.stderr.write(`\n*** SKIPPING: ${r}\n`);
  }
  return r;
}
