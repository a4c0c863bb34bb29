// The Train dashboard's phone cards: one per stage of the run, with the layers it holds and a picture of their
// heads by backend, RAM used against planned, how busy its agent was in the last step, temperature and battery.
// It renders the reducer's state only.
import { formatBytes, formatMs, formatPush } from './format.js';
import { HeadsMap } from './heads-map.js';
import { selectedReady, type WizardState } from './state.js';
import type { DeviceInfo } from '../electron/core/api/types.js';

/** The device list's entry for a plan name (the plain serial on the default adb server, the id elsewhere). */
export function deviceOf(state: WizardState, serial: string): DeviceInfo | undefined {
  return state.devices.list.find((d) => d.serial === serial || d.id === serial);
}

/** A phone's name for labels ("Google Pixel 7"), or its serial when the device list does not know it. */
export function phoneName(state: WizardState, serial: string): string {
  const info = deviceOf(state, serial);
  return info ? [info.manufacturer, info.model].filter(Boolean).join(' ') || serial : serial;
}

/** Temperatures at which a phone starts to throttle (skin ~40 °C, battery ~45 °C): shown as a warning. */
const WARM_C = 42;

export function DeviceCards({ state }: { state: WizardState }) {
  const t = state.train;
  const serials = t.plan ? t.plan.stages.map((s) => s.serial) : selectedReady(state);
  const model = state.model.summary;
  if (serials.length === 0) return <p className="hint">No phones selected.</p>;
  return (
    <ul className="device-cards" aria-label="Phones in this run">
      {serials.map((serial) => {
        const info = deviceOf(state, serial);
        const stage = t.plan?.stages.find((s) => s.serial === serial);
        const live = t.devices[serial];
        const push = t.push[serial];
        const split = t.headSplits[serial];
        const total = info?.ramTotalBytes ?? 0;
        const used = live?.rssBytes ?? 0;
        const peak = live?.peakRssBytes ?? 0;
        // The planning phase's prediction; a re-opened run only has the plan's copy of the same number.
        const planned = t.plannedBytes[serial] ?? stage?.predictedBytes ?? 0;
        const pct = (v: number) => (total > 0 ? Math.min(100, (v / total) * 100) : 0);
        // The agent's reading of this step (hottest CPU/GPU/SoC zone) is fresher than the device poll's battery one.
        const temp = live?.temperatureC ?? info?.temperatureC ?? null;
        const tempTitle = live?.temperatureC != null ? `thermal zone ${live.temperatureZone ?? '?'}, read by the agent in step ${live.step}` : 'battery temperature (adb)';
        const gpuBusy = live?.busyByBackendMs && live.busyByBackendMs.opencl > 0 ? live.busyByBackendMs : null;
        return (
          <li key={serial} className="device-card" data-testid="device-card">
            <div className="device-top">
              <span className="device-name">{info ? phoneName(state, serial) : 'Phone'}</span>
              <span className="mono sub">{serial}</span>
            </div>
            {info && (info.soc || info.abis.length > 0) && (
              <div className="sub" data-testid="device-soc">
                {[info.soc, info.abis[0], info.cpuCores > 0 ? `${info.cpuCores} cores` : ''].filter(Boolean).join(' · ')}
              </div>
            )}
            <div className="device-line" title={stage ? `layers [${stage.layerStart}, ${stage.layerEnd})` : undefined}>
              {stage ? (
                <>
                  Layers {stage.layerStart}–{stage.layerEnd - 1}
                  {model && <span className="sub"> of {model.numLayers}</span>}
                  {stage.hasEmbedding && <span className="tag">embedding</span>}
                  {stage.hasHead && <span className="tag">head</span>}
                </>
              ) : (
                <span className="sub">Waiting for the plan</span>
              )}
            </div>
            {stage && model && (
              <HeadsMap
                layerStart={stage.layerStart}
                layerEnd={stage.layerEnd}
                numHeads={model.numHeads}
                numKvHeads={model.numKvHeads}
                gpuKvGroups={split?.gpuKvGroups ?? 0}
                gpuMlpFraction={split && model.intermediateSize > 0 ? split.gpuMlpCols / model.intermediateSize : 0}
                gpuName={split?.secondary ?? null}
              />
            )}
            {split?.why && <div className="sub">CPU only: {split.why.replace(/^not applied: /, '')}</div>}
            <div className="ram" aria-label={`RAM used on ${serial}`}>
              <div className="ram-bar">
                <div className="ram-used" style={{ width: `${pct(used)}%` }} />
                {planned > 0 && <div className="ram-planned" style={{ left: `${pct(planned)}%` }} title={`planned ${formatBytes(planned)}`} />}
                {peak > 0 && <div className="ram-peak" style={{ left: `${pct(peak)}%` }} title={`peak ${formatBytes(peak)}`} />}
              </div>
              <span className="sub" data-testid="ram-text">
                {[
                  (live ? `${formatBytes(used)} used` : 'RAM') + (total > 0 ? ` of ${formatBytes(total)}` : ''),
                  peak > used ? `peak ${formatBytes(peak)}` : '',
                  planned > 0 ? `planned ${formatBytes(planned)}` : '',
                ]
                  .filter(Boolean)
                  .join(' · ')}
              </span>
            </div>
            <div className="device-line sub" data-testid="device-activity">
              {live
                ? [
                    live.busyFraction !== null ? `busy ${Math.round(live.busyFraction * 100)}%` : '',
                    `${formatMs(live.busyMs)} compute in step ${live.step}`,
                    gpuBusy ? `CPU ${formatMs(gpuBusy.cpu)}, ${split?.secondary ?? 'GPU'} ${formatMs(gpuBusy.opencl)}` : '',
                  ]
                    .filter(Boolean)
                    .join(' · ')
                : push
                  ? formatPush(push)
                  : 'idle'}
            </div>
            <div className="device-line sub" data-testid="device-health">
              {[
                temp !== null ? (
                  <span key="t" className={temp >= WARM_C ? 'warn-text' : undefined} title={tempTitle} data-testid="device-temperature">
                    {temp.toFixed(1)} °C
                  </span>
                ) : null,
                info?.batteryPercent != null ? (
                  <span key="b">
                    battery {info.batteryPercent}%{info.batteryCharging ? ' (charging)' : ''}
                  </span>
                ) : null,
              ]
                .filter(Boolean)
                .flatMap((el, i) => (i === 0 ? [el] : [' · ', el]))}
            </div>
          </li>
        );
      })}
    </ul>
  );
}
