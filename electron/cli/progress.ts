// Prints a training run's events as readable lines on the terminal (or JSON lines with --json). Display only.
import type { TrainEvent } from '../core/api/types.js';
import { mib } from './args.js';

export function printEvent(e: TrainEvent, json: boolean): void {
  if (json) {
    if (e.type !== 'push-progress') console.log(JSON.stringify(e));
    return;
  }
  switch (e.type) {
    case 'run-started':
      console.log(`run ${e.runId}\n  folder ${e.runDir}`);
      for (const s of e.plan.stages) {
        const extras = [s.hasEmbedding ? 'embedding' : '', s.hasHead ? 'norm + LM head + loss' : ''].filter(Boolean).join(', ');
        console.log(`  ${s.serial}: layers [${s.layerStart}, ${s.layerEnd})${extras ? ` + ${extras}` : ''}, predicted ${mib(s.predictedBytes)}`);
      }
      break;
    case 'phase':
      console.log(`${e.phase}: ${e.detail}`);
      break;
    case 'push-progress':
      if (e.bytesSent === e.bytesTotal) console.log(`  pushed ${e.file} to ${e.serial} (${mib(e.bytesTotal)})`);
      break;
    case 'step':
      console.log(`  step ${String(e.step).padStart(4)}/${e.totalSteps}  loss ${e.loss.toFixed(4)}  lr ${e.lr.toExponential(2)}  ${Math.round(e.tokPerSec)} tok/s`);
      break;
    case 'eval':
      console.log(`  held-out loss ${e.when} training: ${e.loss.toFixed(4)}`);
      break;
    case 'run-finished':
      console.log(e.ok ? `finished: ${e.runDir}` : `failed: ${e.error}\n  run folder ${e.runDir}`);
      break;
    case 'device-step':
      break;
  }
}
