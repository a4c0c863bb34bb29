// Per-step numbers of a run: each stage's compute (busy) time, in all and per backend (CPU, OpenCL), its waiting
// (idle) time, the bytes its session moved, its memory and the phone's temperature, from the agents' STATS (the
// counters cumulative, turned into per-step differences; the agent reads the thermal zones itself, so the
// temperature costs no adb round trip); and the run's ETA. No I/O of its own beyond asking STATS; the job emits what
// it returns.
import type { StatsReply } from '../protocol/messages.js';
import type { TrainEvent } from '../api/types.js';

export interface MeteredAgent {
  serial: string;
  client: { stats(): Promise<StatsReply> };
}

type DeviceStep = Extract<TrainEvent, { type: 'device-step' }>;

/** Remembers each agent's last cumulative STATS so every step reports only its own share. */
export class DeviceMeter {
  private readonly last = new Map<string, StatsReply>();
  readonly peakRssBytes = new Map<string, number>();

  /** Sets the baseline (e.g. after evaluation, so evaluation time is not counted as the first step's). */
  async baseline(agents: MeteredAgent[]): Promise<void> {
    for (const a of agents) this.last.set(a.serial, await a.client.stats());
  }

  /** Forgets agents (after a recovery their replacements start from zero counters). */
  reset(): void {
    this.last.clear();
  }

  async step(agents: MeteredAgent[], runId: string, step: number, stepMs: number): Promise<DeviceStep[]> {
    const out: DeviceStep[] = [];
    for (const a of agents) {
      const st = await a.client.stats();
      const prev = this.last.get(a.serial);
      this.last.set(a.serial, st);
      this.peakRssBytes.set(a.serial, Math.max(this.peakRssBytes.get(a.serial) ?? 0, st.peakRssBytes));
      const busyMs = (st.busyUs - (prev?.busyUs ?? 0)) / 1000;
      const ev: DeviceStep = {
        type: 'device-step', runId, step, serial: a.serial,
        busyMs, idleMs: Math.max(0, stepMs - busyMs),
        rssBytes: st.rssBytes, peakRssBytes: st.peakRssBytes,
        bytesIn: st.bytesIn - (prev?.bytesIn ?? 0), bytesOut: st.bytesOut - (prev?.bytesOut ?? 0),
        timeMs: Date.now(),
      };
      // An agent that reports the per-backend fields reports them in every STATS (docs/protocol.md "STATS").
      if (st.primaryBusyUs !== undefined && st.secondaryBusyUs !== undefined) {
        ev.busyByBackendMs = {
          cpu: (st.primaryBusyUs - (prev?.primaryBusyUs ?? 0)) / 1000,
          opencl: (st.secondaryBusyUs - (prev?.secondaryBusyUs ?? 0)) / 1000,
        };
        ev.temperatureC = st.temperatureMillicelsius === undefined ? null : st.temperatureMillicelsius / 1000;
        if (st.temperatureZone !== undefined) ev.temperatureZone = st.temperatureZone;
      }
      out.push(ev);
    }
    return out;
  }
}

/** Time left: the mean step time so far times the steps left (null before the first step). */
export function etaMs(stepMsSoFar: number, stepsDone: number, stepsLeft: number): number | null {
  if (stepsDone <= 0) return null;
  return (stepMsSoFar / stepsDone) * stepsLeft;
}
