// End-to-end: the REAL core service behind the headless server, driven through the whole wizard in headless
// Chromium (virtual phones -> inspect -> preview -> train -> export -> generate), with a screenshot per step in
// test-artifacts/e2e/. Not a test of the Electron shell (its wiring is unit-tested in test/unit/ipc-*.test.ts).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { WebSocket } from 'ws';
import { createService } from '../../electron/core/service.js';
import { startServer } from '../../electron/server/server.js';
import { needTool } from '../support/tools.js';
import { freePort } from '../support/free-port.js';

const skip = needTool('chromium') || needTool('adb');
const repoRoot = process.cwd(); // scripts/test.mjs runs from the repo root
const staticDir = join(repoRoot, 'build', 'renderer');
const shotsDir = join(repoRoot, 'test-artifacts', 'e2e');
const TRAIN_STEPS = 4;

/** Polls `check` until it holds (the page's CSP forbids the string evaluation waitForFunction would need). */
async function until(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('the wizard trains, exports and generates against the real core', { skip, timeout: 15 * 60_000 }, async () => {
  assert.ok(existsSync(join(staticDir, 'index.html')), `no built renderer in ${staticDir}: run npm run build:renderer`);
  mkdirSync(shotsDir, { recursive: true });
  const outRoot = await mkdtemp(join(tmpdir(), 'confidant-e2e-'));

  // A private adb server: virtual phones from other test runs (or a developer's session) on the default server
  // are neither used nor disturbed. (A USB phone would be seen by both servers; CI has none.)
  const adbPort = await freePort();
  const service = await createService({ repoRoot, adbPort, runsDir: join(outRoot, 'runs') });
  const server = await startServer({ service, staticDir });
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    // --- the token guards both doors -----------------------------------------------------------------------------
    assert.equal((await fetch(`${server.origin}/`)).status, 401, 'page without token');
    assert.equal((await fetch(`${server.origin}/?token=${'0'.repeat(64)}`)).status, 401, 'page with a wrong token');
    assert.equal(await wsStatus(`${server.origin.replace('http', 'ws')}/api`, server.origin), 401, 'WebSocket without token');

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(180_000);
    const consoleProblems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') consoleProblems.push(m.text());
    });
    page.on('pageerror', (e) => consoleProblems.push(`uncaught: ${e.message}`));
    let shotNo = 0;
    const shot = (name: string) => page.screenshot({ path: join(shotsDir, `${String(++shotNo).padStart(2, '0')}-${name}.png`) });
    const next = () => page.getByRole('button', { name: 'Next →' }).click();

    // --- 1. Devices -------------------------------------------------------------------------------------------------
    await page.goto(server.url);
    await page.getByRole('heading', { name: 'Phones' }).waitFor();
    await page.getByText(/Looking for phones/).waitFor({ state: 'detached' });
    await shot('devices');
    const startVirtual = page.getByRole('button', { name: 'Start 2 virtual phones' });
    if (await startVirtual.isVisible()) {
      await startVirtual.click();
      await page.locator('table[aria-label="Phones"] tbody .state.ok').nth(1).waitFor();
    } else {
      process.stderr.write('e2e: phones were already ready; training on those\n');
    }
    // Train on virtual phones only, so a developer's own phone is never used by the test.
    const rows = page.locator('table[aria-label="Phones"] tbody tr');
    for (let i = 0; i < (await rows.count()); i++) {
      const row = rows.nth(i);
      const box = row.getByRole('checkbox');
      if (!(await box.isEnabled())) continue;
      const isVirtual = (await row.locator('.tag', { hasText: 'virtual' }).count()) > 0;
      if ((await box.isChecked()) !== isVirtual) await box.click();
    }
    // "Check agent" on a virtual phone: its x86_64 agent answers with its CPU SIMD level (the real HELLO, via adb).
    const virtualRow = rows.filter({ has: page.locator('.tag', { hasText: 'virtual' }) }).first();
    await virtualRow.getByRole('button', { name: 'Check agent' }).click();
    const probe = virtualRow.locator('[data-probe]');
    await probe.filter({ hasNotText: 'Asking' }).waitFor({ timeout: 30_000 });
    assert.match((await probe.textContent())!, /x86_64 · \d+ threads · cpu\(/, 'agent report shown');
    await shot('devices-ready');
    await next();

    // --- 2. Model ---------------------------------------------------------------------------------------------------
    const modelPath = page.getByLabel('Model folder');
    assert.notEqual(await modelPath.inputValue(), '', 'model path prefilled from defaults()');
    await page.getByRole('button', { name: 'Inspect' }).click();
    const summary = page.getByLabel('Model summary');
    await summary.waitFor();
    const layersText = await summary.locator('div', { hasText: 'Layers' }).locator('dd').textContent();
    assert.ok(Number(layersText) > 0, `layers shown: ${layersText}`);
    await shot('model');
    await next();

    // --- 3. Data ----------------------------------------------------------------------------------------------------
    assert.notEqual(await page.getByLabel('Dataset file').inputValue(), '', 'dataset path prefilled from defaults()');
    await page.getByRole('button', { name: 'Preview' }).click();
    await page.getByTestId('dataset-summary').waitFor();
    assert.ok((await page.locator('ol.samples li').count()) > 0, 'samples shown');
    await shot('data');
    await next();

    // --- 4. Plan ----------------------------------------------------------------------------------------------------
    const planStages = page.getByTestId('plan-stage');
    await page.getByTestId('plan-table').waitFor();
    assert.equal(await planStages.count(), 2, 'one stage per virtual phone');
    const memoryBefore = await planStages.first().getByTestId('plan-memory').textContent();
    await page.getByLabel('Base weights').selectOption('int8'); // 1 byte per weight on the phones
    await until(async () => (await planStages.first().getByTestId('plan-memory').textContent()) !== memoryBefore, 'the plan follows the format');
    // Move one layer from the second phone to the first and see the prediction follow.
    const layersOf = async () => Promise.all((await page.getByTestId('plan-layers').all()).map(async (l) => Number(await l.textContent())));
    const suggested = await layersOf();
    assert.equal(suggested.reduce((a, b) => a + b, 0), 5, `stories260K has 5 layers: ${suggested}`);
    const [grow, take] = suggested[1]! > 1 ? [0, 1] : [1, 0];
    await page.getByRole('button', { name: `one layer more on stage ${grow + 1}` }).click();
    const edited = suggested.map((n, i) => (i === grow ? n + 1 : i === take ? n - 1 : n));
    await until(async () => (await layersOf()).join() === edited.join() && (await page.getByTestId('plan-summary').getAttribute('aria-busy')) === 'false', 'the edited split is predicted');
    assert.equal(await page.getByLabel('Re-plan from measured speeds when clearly faster').isChecked(), false, 'an edited split is kept by the run');
    assert.equal(await page.getByRole('button', { name: 'Back to the suggested split' }).count(), 1);
    assert.equal(await page.getByTestId('heads-map').count(), 2, 'a heads picture per stage');
    await shot('plan');
    await next();

    // --- 5. Train ---------------------------------------------------------------------------------------------------
    await page.getByLabel('Steps').fill(String(TRAIN_STEPS));
    await page.getByRole('button', { name: 'Start training' }).click();
    // Pause as soon as the run exists: the job holds before its first step, with the phones loaded.
    const pause = page.getByRole('button', { name: 'Pause' });
    await page.locator('button:has-text("Pause"):not([disabled])').waitFor();
    await pause.click();
    await page.getByTestId('train-status').filter({ hasText: /Paused|Failed/ }).waitFor({ timeout: 5 * 60_000 });
    await shot('train-paused');
    assert.equal(await page.getByTestId('train-status').textContent(), 'Paused', `the run did not pause: ${await page.getByRole('alert').allTextContents()}`);
    assert.equal(await page.getByTestId('loss-chart').getAttribute('data-points'), '0', 'held before the first step');
    await page.getByRole('button', { name: 'Resume' }).click();
    // The first loss point, or the run's end (a failed run never draws one; its error is asserted below).
    await page
      .locator('[data-testid=loss-chart]:not([data-points="0"])')
      .or(page.getByTestId('train-status').filter({ hasText: /Failed|Stopped/ }))
      .waitFor();
    await shot('train-live');
    await page.getByTestId('train-status').filter({ hasText: /Finished|Failed|Stopped/ }).waitFor({ timeout: 10 * 60_000 });
    const status = await page.getByTestId('train-status').textContent();
    const error = (await page.getByRole('alert').count()) > 0 ? await page.getByRole('alert').first().textContent() : '';
    await shot('train-done');
    assert.equal(status, 'Finished', `run ended ${status}: ${error}`);
    const points = Number(await page.getByTestId('loss-chart').getAttribute('data-points'));
    assert.equal(points, TRAIN_STEPS, 'one loss point per step reached the page');
    assert.ok((await page.getByTestId('device-card').count()) >= 1, 'device cards shown');
    // Each card: the heads of its layers by backend, and the temperature its agent read from the phone's own zones.
    assert.equal(await page.getByTestId('device-card').getByTestId('heads-map').count(), 2);
    assert.match((await page.getByTestId('device-temperature').first().getAttribute('title')) ?? '', /thermal zone \S+, read by the agent/);
    assert.match((await page.getByTestId('device-activity').first().textContent()) ?? '', /busy \d+%/);
    assert.match((await page.getByTestId('device-soc').first().textContent()) ?? '', /x86_64 · \d+ cores/);
    // The last step's pipeline: a forward and a backward bar per micro-batch on each of the 2 stages.
    const gantt = page.getByTestId('pipeline-gantt');
    await gantt.scrollIntoViewIfNeeded();
    await gantt.screenshot({ path: join(shotsDir, `${String(++shotNo).padStart(2, '0')}-pipeline.png`) });
    const throughput = page.getByTestId('throughput-chart');
    await throughput.scrollIntoViewIfNeeded();
    await throughput.screenshot({ path: join(shotsDir, `${String(++shotNo).padStart(2, '0')}-tokens-per-sec.png`) });
    assert.equal(Number(await throughput.getAttribute('data-points')), TRAIN_STEPS, 'one tokens/s point per step');
    const spans = Number(await gantt.getAttribute('data-spans'));
    assert.ok(spans >= 2 * 2 && spans % 2 === 0, `pipeline spans of the last step: ${spans}`);
    // Cross-check the page against the run's own record (types.ts: events are also written to events.jsonl).
    const runDir = (await page.locator('.hint .mono').last().textContent())!.trim();
    const stepEvents = readFileSync(join(runDir, 'events.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string })
      .filter((e) => e.type === 'step');
    assert.equal(stepEvents.length, points, 'every step event in events.jsonl reached the page');
    const runJson = JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8')) as { settings: { weightFormat: string; replan: boolean }; plan: { stages: Array<{ layerStart: number; layerEnd: number }> } };
    assert.equal(runJson.settings.weightFormat, 'int8', 'the base-weight choice reached the run');
    assert.deepEqual(runJson.plan.stages.map((st) => st.layerEnd - st.layerStart), edited, 'the run trained on the edited split');
    assert.equal(runJson.settings.replan, false);
    const holds = readFileSync(join(runDir, 'events.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; paused?: boolean; step?: number }).filter((e) => e.type === 'hold');
    assert.deepEqual(holds.map((e) => [e.paused, e.step]), [[true, 1], [false, 1]], 'one hold before step 1, released');
    await next();

    // --- 6. Export --------------------------------------------------------------------------------------------------
    const outDir = join(outRoot, 'adapter-peft');
    await page.getByLabel('Output folder').fill(outDir);
    await page.getByRole('button', { name: 'Export PEFT' }).click();
    await page.getByTestId('export-result').waitFor();
    assert.ok(existsSync(join(outDir, 'adapter_config.json')), 'PEFT adapter_config.json written');
    await shot('export');
    await next();

    // --- 7. Try it --------------------------------------------------------------------------------------------------
    await page.getByLabel('Max tokens').fill('16');
    await page.getByRole('button', { name: 'Generate' }).click();
    await page.getByTestId('generated').or(page.getByRole('alert')).waitFor();
    await shot('try-it');
    assert.equal(await page.getByRole('alert').count(), 0, `generate failed: ${await page.getByRole('alert').allTextContents()}`);

    // --- Runs: the run just trained is listed from its folder and re-opens on the Train step --------------------------
    const runId = runDir.split('/').at(-1)!;
    await page.getByRole('button', { name: 'Runs' }).click();
    const runRow = page.locator(`table[aria-label="Runs"] tr[data-run-id="${runId}"]`);
    await runRow.waitFor();
    assert.match((await runRow.textContent())!, /finished/);
    await shot('runs');
    await runRow.getByRole('button', { name: 'Open' }).click();
    // The run opens on the Train step (the Try step names the run too, so wait for the step, not the id).
    await page.locator('[aria-current="step"]', { hasText: 'Train' }).waitFor();
    assert.ok((await page.locator('main').textContent())!.includes(runId), 'the Train step shows the re-opened run');

    // A CSP violation or a script error anywhere on the way is a failure.
    assert.deepEqual(consoleProblems, []);
  } catch (err) {
    const pages = browser.contexts().flatMap((c) => c.pages());
    if (pages[0]) await pages[0].screenshot({ path: join(shotsDir, 'failure.png') }).catch(() => {});
    throw err;
  } finally {
    await browser.close();
    await server.close();
    await service.dispose();
    spawnSync('adb', ['-P', String(adbPort), 'kill-server'], { stdio: 'ignore' });
    await rm(outRoot, { recursive: true, force: true });
  }
});

/** HTTP status of a refused WebSocket upgrade (0 if it was accepted). */
function wsStatus(url: string, origin: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { origin });
    ws.once('open', () => {
      ws.close();
      resolve(0);
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? -1);
      ws.terminate();
    });
    ws.once('error', reject);
  });
}
