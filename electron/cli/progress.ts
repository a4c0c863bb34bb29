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
      // One line per file, when it is on the phone and verified (a skipped file has its own 'phase' line). Every
      // report of a finished file has bytesSent === bytesTotal (end of pushing, verifying, done): only 'done' counts.
      if (e.phase === 'done') console.log(`  pushed ${e.file} to ${e.serial} (${mib(e.bytesTotal)})`);
      break;
    case 'step': {
      const eta = e.etaMs == null ? '' : `  eta ${formatDuration(e.etaMs)}`;
      console.log(`  step ${String(e.step).padStart(4)}/${e.totalSteps}  loss ${e.loss.toFixed(4)}  lr ${e.lr.toExponential(2)}  ${Math.round(e.tokPerSec)} tok/s${eta}`);
      break;
    }
    case 'checkpoint':
      console.log(`  checkpoint at step ${e.step}: ${e.dir} (${mib(e.bytes)})`);
      break;
    case 'paused':
      console.log(`paused at step ${e.step}: ${e.lostSerials.length ? `lost ${e.lostSerials.join(', ')}` : 'failure'}` +
        `${e.giveUp ? '' : ` (recovery ${e.attempt})`}\n  ${e.reason.split('\n')[0]}`);
      break;
    case 'resumed':
      console.log(`resumed from step ${e.fromStep} on ${e.plan.stages.map((s) => `${s.serial} [${s.layerStart}, ${s.layerEnd})`).join(', ')}`);
      break;
    case 'eval':
      console.log(`  held-out loss ${e.when} training: ${e.loss.toFixed(4)}`);
      break;
    case 'run-finished':
      console.log(e.ok ? `finished: ${e.runDir}` : `failed: ${e.error}\n  run folder ${e.runDir}`);
      break;
    case 'device-step':
    case 'timeline':
      break;
  }
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
