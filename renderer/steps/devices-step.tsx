// Step 1: the phones adb can see, their state and what to do about it, and which ones to train on.
// It does not deploy anything to a phone; that happens when training starts.
import type { StepProps } from '../app.js';
import { refreshDevices, startVirtualPhones } from '../actions.js';
import { formatBytes } from '../format.js';
import { isReady } from '../state.js';

export function DevicesStep({ state, dispatch, api }: StepProps) {
  const { list, selected, startingVirtual, error, loadedOnce } = state.devices;
  const readyCount = list.filter(isReady).length;
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
              return (
                <tr key={d.serial} className={ready ? '' : 'muted-row'}>
                  <td className="check-col">
                    <input
                      type="checkbox"
                      aria-label={`Train on ${d.serial}`}
                      checked={selected.includes(d.serial)}
                      disabled={!ready}
                      onChange={() => dispatch({ type: 'device-toggled', serial: d.serial })}
                    />
                  </td>
                  <td>
                    {name}
                    {d.virtual && <span className="tag">virtual</span>}
                    {d.soc && <div className="sub">{d.soc}</div>}
                  </td>
                  <td className="mono">{d.serial}</td>
                  <td>
                    <span className={`state ${ready ? 'ok' : 'warn'}`}>{ready ? 'ready' : d.state}</span>
                    {!ready && d.guidance && <div className="sub guidance">{d.guidance}</div>}
                  </td>
                  <td className="num">
                    {d.ramTotalBytes > 0 ? `${formatBytes(d.ramAvailableBytes)} of ${formatBytes(d.ramTotalBytes)}` : '–'}
                  </td>
                  <td className="num">{d.batteryPercent === null ? '–' : `${d.batteryPercent}%`}</td>
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
