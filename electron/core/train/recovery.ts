// Phone loss during training: which phones are gone, whether the run may try again, and the devices it re-plans on.
// Pure decisions; the job does the stopping, re-planning, redeploying and restoring.
import type { PlanDevice } from '../plan/partition.js';

export interface AgentLike {
  serial: string;
  client: { readonly isOpen: boolean };
}

/** Default number of recoveries a run attempts before it fails (each loses at most checkpointEvery steps). */
export const DEFAULT_MAX_RECOVERIES = 3;

/**
 * The phones whose agent session ended: the heartbeat or a broken connection terminates a client, so a closed one
 * is a lost phone. A healthy neighbour only saw its pipeline fail and stays open.
 */
export function lostSerials(agents: AgentLike[]): string[] {
  return agents.filter((a) => !a.client.isOpen).map((a) => a.serial);
}

export type RecoveryDecision =
  | { kind: 'recover'; devices: PlanDevice[] }
  | { kind: 'give-up'; reason: string };

/**
 * After a failed step: recover on the remaining phones when at least one phone was lost (an error on healthy phones,
 * e.g. out of memory, would fail again the same way), the retry limit is not used up and a phone is left.
 */
export function decideRecovery(devices: PlanDevice[], lost: string[], attempt: number, maxRecoveries: number, checkpointNote: string): RecoveryDecision {
  if (lost.length === 0) return { kind: 'give-up', reason: 'no phone was lost (the failure is not one a re-plan fixes)' };
  const remaining = devices.filter((d) => !lost.includes(d.serial));
  if (remaining.length === 0) {
    return { kind: 'give-up', reason: `no phone remains after losing ${lost.join(', ')}; ${checkpointNote}` };
  }
  if (attempt > maxRecoveries) {
    return { kind: 'give-up', reason: `lost ${lost.join(', ')} and the recovery limit (${maxRecoveries}) is used up; ${checkpointNote}` };
  }
  return { kind: 'recover', devices: remaining };
}
