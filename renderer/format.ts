// Number formatting for the UI (bytes, counts, durations, losses). Pure functions, no DOM; not localised beyond the
// thousands separator.
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '?';
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 || u === 0 ? Math.round(v) : v.toFixed(1)} ${UNITS[u]}`;
}

/** 15_200_000 -> "15.2M"; 260_000 -> "260K". */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return '?';
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${(n / 1e9).toFixed(abs >= 1e10 ? 0 : 1)}B`;
  if (abs >= 1e6) return `${(n / 1e6).toFixed(abs >= 1e7 ? 0 : 1)}M`;
  if (abs >= 1e3) return `${(n / 1e3).toFixed(abs >= 1e4 ? 0 : 1)}K`;
  return String(n);
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

export function formatLoss(loss: number | null): string {
  return loss === null || !Number.isFinite(loss) ? '–' : loss.toFixed(4);
}

/** A file on its way to a phone: "sending stage.cfst 42% · 12.3 MiB/s · 4.0 s left", or what is happening instead. */
export function formatPush(p: { file: string; bytesSent: number; bytesTotal: number; bytesPerSec: number | null; etaMs: number | null; phase: string | null }): string {
  if (p.phase === 'skipped') return `${p.file} already on the phone`;
  if (p.phase === 'checking' || p.phase === 'verifying') return `${p.phase} ${p.file}`;
  const pct = Math.round((p.bytesSent / Math.max(1, p.bytesTotal)) * 100);
  const rate = p.bytesPerSec ? ` · ${formatBytes(p.bytesPerSec)}/s` : '';
  const eta = p.etaMs !== null && p.bytesSent < p.bytesTotal ? ` · ${formatMs(p.etaMs)} left` : '';
  return `sending ${p.file} ${pct}%${rate}${eta}`;
}
