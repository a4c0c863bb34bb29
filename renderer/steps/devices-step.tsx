// Step 1: the phones adb can see, their state and what to do about it, and which ones to train on.
// It does not deploy anything to a phone; that happens when training starts.
import type { DeviceInfo } from '../../electron/core/api/types.js';
import type { StepProps } from '../app.js';
import { probeDevice, refreshDevices, startVirtualPhones } from '../actions.js';
import { formatBytes } from '../format.js';
import { isReady, type AgentProbe } from '../state.js';

/** "8 cores · up to 3.19 GHz", or '' when the phone did not say. */
function cpuText(d: DeviceInfo): string {
  if (d.cpuCores === 0) return '';
  const max = Math.max(0, ...d.cpuMaxFreqsKHz.map((f) => f ?? 0));
  return `${d.cpuCores} cores${max > 0 ? ` · up to ${(max / 1e6).toFixed(2)} GHz` : ''}`;
}

/** Battery temperature and the hottest thermal zone, e.g. "31.0 °C · peak 41.2 °C". */
function thermalText(d: DeviceInfo): { text: string; title: string } {
  const hottest = d.thermalZones.reduce<DeviceInfo['thermalZones'][number] | null>((m, z) => (m && m.tempC >= z.tempC ? m : z), null);
  const parts = [d.temperatureC === null ? '' : `${d.temperatureC.toFixed(1)} °C`, hottest ? `peak ${hottest.tempC.toFixed(1)} °C` : ''];
  return { text: parts.filter(Boolean).join(' · '), title: hottest ? `hottest thermal zone: ${hottest.type}` : '' };
}

/** The agent's answer in one line: "arm64-v8a · 8 threads · cpu(neon x8) · opencl(Adreno 740)". */
function probeText(p: AgentProbe): string {
  if (p.status === 'probing') return 'Asking the agent…';
  if (p.status === 'failed') return `Agent check failed: ${p.error}`;
  // An OpenCL driver on the CPU (PoCL, some emulators) shares the CPU's cores: say so, a head split cannot gain there.
  const kind = p.report.openclDeviceType && p.report.openclDeviceType !== 'gpu' ? [`OpenCL runs on the ${p.report.openclDeviceType === 'cpu' ? 'CPU' : p.report.openclDeviceType}`] : [];
  return [p.report.abi, `${p.report.cpuThreads} threads`, ...p.report.backends, ...kind].join(' · ');
}

export function DevicesStep({ state, dispatch, api }: StepProps) {
  const { list, selected, startingVirtual, error, loadedOnce, probes } = state.devices;
  const readyCount = list.filter(isReady).length;
  // Name the adb server only when phones come from more than one.
  const severalServers = new Set(list.map((d) => d.server)).size > 1;
  return (
    <section className="step">
      <div className="step-head">
        <div>
          <h2>Phones</h2>
          <p className="lead">
            Confidant splits the model across the Android phones attached to this computer. Pick the ones to train on.
          </p>
        </div>
        <div className="actions">
          <button type="button" onClick={() => void refreshDevices(api, dispatch)}>
            Refresh
          </button>
          {readyCount === 0 && (
            <button
              type="button"
              className="primary"
              disabled={startingVirtual}
              onClick={() => void startVirtualPhones(api, dispatch, 2)}
            >
              {startingVirtual ? 'Starting virtual phones…' : 'Start 2 virtual phones'}
            </button>
          )}
        </div>
      </div>

      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}

      {list.length === 0 ? (
        <div className="empty">
          {loadedOnce ? (
            <>
              <strong>No phones found.</strong> Connect a phone with USB debugging turned on (Settings → Developer
              options), or start virtual phones to try Confidant without one.
            </>
          ) : (
            'Looking for phones…'
          )}
        </div>
      ) : (
        <table className="table" aria-label="Phones">
          <thead>
            <tr>
              <th className="check-col">Use</th>
              <th>Phone</th>
              <th>Serial</th>
              <th>State</th>
              <th className="num">Free RAM</th>
              <th className="num">Battery</th>
              <th>Android</th>
            </tr>
          </thead>
          <tbody>
            {list.map((d) => {
              const ready = isReady(d);
              const name = [d.manufacturer, d.model].filter(Boolean).join(' ') || 'Unknown phone';
              const hardware = [d.soc, cpuText(d)].filter(Boolean).join(' · ');
              const thermal = thermalText(d);
              return (
                <tr key={d.id} className={ready ? '' : 'muted-row'} data-device-id={d.id}>
                  <td className="check-col">
                    <input
                      type="checkbox"
                      aria-label={`Train on ${d.serial}`}
                      checked={selected.includes(d.id)}
                      disabled={!ready}
                      onChange={() => dispatch({ type: 'device-toggled', id: d.id })}
                    />
                  </td>
                  <td>
                    {name}
                    {d.virtual && <span className="tag">virtual</span>}
                    {hardware && <div className="sub">{hardware}</div>}
                  </td>
                  <td className="mono">
                    {d.serial}
                    {severalServers && <div className="sub">via {d.server}</div>}
                  </td>
                  <td>
                    <span className={`state ${ready ? 'ok' : 'warn'}`}>{ready ? 'ready' : d.state === 'device' ? 'not ready' : d.state}</span>
                    {!ready && d.guidance && <div className="sub guidance">{d.guidance}</div>}
                    {ready && (
                      <div className="sub">
                        {probes[d.id] ? (
                          <span className={probes[d.id]!.status === 'failed' ? 'guidance' : ''} data-probe={d.id}>
                            {probeText(probes[d.id]!)}
                          </span>
                        ) : (
                          <button
                            type="button"
                            className="link"
                            title="Start the agent on the phone for a moment and show its CPU SIMD level and OpenCL GPU"
                            onClick={() => void probeDevice(api, dispatch, d.id)}
                          >
                            Check agent
                          </button>
                        )}
                      </div>
                    )}
                  </td>
                  <td className="num">
                    {d.ramTotalBytes > 0 ? `${formatBytes(d.ramAvailableBytes)} of ${formatBytes(d.ramTotalBytes)}` : '–'}
                  </td>
                  <td className="num">
                    {d.batteryPercent === null ? '–' : `${d.batteryPercent}%`}
                    {d.batteryCharging && (
                      <span className="charging" title="charging" aria-label="charging">
                        {' '}⚡
                      </span>
                    )}
                    {thermal.text && (
                      <div className="sub" title={thermal.title}>
                        {thermal.text}
                      </div>
                    )}
                  </td>
                  <td>{d.androidVersion || '–'}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <p className="hint">
        {selected.length} of {readyCount} ready phone{readyCount === 1 ? '' : 's'} selected.
      </p>
    </section>
  );
}
