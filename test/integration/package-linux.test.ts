// electron-builder.yml run for real and offline: linux --dir (the unpacked app that AppImage and deb wrap), then mac
// and win --dir, each with a stand-in Electron distribution as `electronDist` that replaces only the Electron runtime
// binary (it cannot be downloaded here). The Linux folder is checked the way an installed app needs it, and its
// packaged core runs in a child Node process: onnxruntime from app.asar.unpacked generates llama2.c's golden text
// from the bundled model, and the packaged x86_64 agent answers HELLO. Not the installers (AppImage, deb, dmg and
// NSIS need tools electron-builder downloads) and not Electron itself (the stand-in cannot start the app).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { performance } from 'node:perf_hooks';
import { extractAll, extractFile, listPackage, statFile } from '@electron/asar';
import { Arch, Platform, build, type AfterPackContext, type Configuration } from 'electron-builder';
import { openModel } from '../../electron/core/model/model-folder.js';
import { modelFacts } from '../../electron/core/model/model-summary.js';
import { loadTokenizer } from '../../electron/core/model/tokenizer.js';
import { PROTOCOL_VERSION } from '../../electron/core/protocol/wire.js';
import { repoRoot } from '../support/local-agent.js';
import { needTool } from '../support/tools.js';
import {
  ELF_MACHINE,
  builderConfigApi,
  type FpmMetaInfo,
  linuxTargetApi,
  makeLinuxStandIn,
  makeMacStandIn,
  makeWinStandIn,
  readElfHeader,
  standInScript,
  withNetworkRefused,
} from '../support/package-check.js';

const ROOT = repoRoot();
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  main: string;
  description: string;
  homepage?: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
// The Electron the project is built against: electron-builder would otherwise read the same file.
const ELECTRON_VERSION = (JSON.parse(readFileSync(join(ROOT, 'node_modules/electron/package.json'), 'utf8')) as { version: string }).version;
// Vite bundles these into build/renderer/assets; electron-builder.yml leaves them out of the asar.
const RENDERER_BUNDLED = ['react', 'react-dom', 'uplot'];
const HOST_AGENT = join(ROOT, 'build/native/android-agent/confidant-agent');
const ARM64_AGENT = join(ROOT, 'build/agents/arm64-v8a/confidant-agent');
const MODEL_DIR = join(ROOT, 'models/stories260K');
const GOLDEN = join(ROOT, 'test/fixtures/golden/stories260K-greedy-200.json');
const QUIET_LOGGER = { isEnabled: false, add() {} };
/** Packaging a --dir takes about 5-10 s here; the limit is for a loaded 2-core CI machine. */
const PACK_BUDGET_S = 60;

function skipReason(): string | false {
  const missing: string[] = [];
  if (process.platform !== 'linux' || process.arch !== 'x64') missing.push(`a linux-x64 host (this is ${process.platform}-${process.arch}): the child process loads the packaged linux-x64 onnxruntime`);
  // electron-builder lists the production dependencies with `npm list`.
  if (needTool('npm')) missing.push('npm');
  if (missing.length === 0) return false;
  const msg = `packaging test: needs ${missing.join('; ')}`;
  if (process.env.CI === 'true') throw new Error(`CI must not skip: ${msg}`);
  process.stderr.write(`\n*** SKIPPING: ${msg}\n`);
  return msg;
}

/** A loud note (a failure under CI=true) for a check that cannot run because a local build step was skipped. */
function noteMissing(what: string, how: string): void {
  const msg = `${what} is missing (${how}): its packaging checks are skipped`;
  if (process.env.CI === 'true') throw new Error(`CI must not skip: ${msg}`);
  process.stderr.write(`\n*** SKIPPING: ${msg}\n`);
}

const skip = skipReason();
let work = '';

before(async () => {
  for (const built of ['build/electron/shell/main.js', 'build/electron/shell/preload.cjs', 'build/renderer/index.html', 'build/native/android-agent/confidant-agent']) {
    if (!existsSync(join(ROOT, built))) throw new Error(`${built} is not built: run npm run build before this test`);
  }
  work = await mkdtemp(join(tmpdir(), 'cfd-package-'));
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** electron-builder for one platform's `dir` target, on the real electron-builder.yml, with the network refused. */
async function pack(platform: Platform, arch: Arch, electronDist: string, outDir: string, extra: Configuration = {}): Promise<number> {
  const t0 = performance.now();
  const { attempts } = await withNetworkRefused(() =>
    build({
      projectDir: ROOT,
      targets: platform.createTarget('dir', arch),
      publish: 'never',
      // Only what a test must change: where Electron comes from, its version (no lookup), where the output goes.
      config: { electronDist, electronVersion: ELECTRON_VERSION, directories: { output: outDir }, ...extra },
    }),
  );
  assert.deepEqual(attempts, [], `electron-builder tried to reach the network: ${attempts.join(', ')}`);
  const seconds = (performance.now() - t0) / 1000;
  assert.ok(seconds < PACK_BUDGET_S, `${platform.name} --dir took ${seconds.toFixed(1)} s, over the ${PACK_BUDGET_S} s budget: check files/asarUnpack in electron-builder.yml`);
  return seconds;
}

/** Paths in the asar (leading '/'), as the installed app's fs sees them. */
function asarFiles(asarPath: string): Set<string> {
  return new Set(listPackage(asarPath, { isPack: false }).map((p) => p.split(sep).join('/')));
}

function children(files: Set<string>, dir: string): string[] {
  const prefix = dir === '/' ? '/' : `${dir}/`;
  return [...files].filter((f) => f.startsWith(prefix) && !f.slice(prefix.length).includes('/')).sort();
}

/**
 * The asar holds the compiled app code, the Vite output and the production dependencies, and nothing else: no
 * sources, tests, source maps, native build trees or dev dependencies (a platform `files` list made only of
 * exclusions would make electron-builder copy the whole project, which this catches on every platform).
 */
function checkAsarContents(asarPath: string): Set<string> {
  const files = asarFiles(asarPath);
  assert.deepEqual(children(files, '/'), ['/build', '/node_modules', '/package.json']);
  assert.deepEqual(children(files, '/build'), ['/build/electron', '/build/renderer']);
  assert.deepEqual(children(files, '/build/renderer'), ['/build/renderer/assets', '/build/renderer/index.html']);
  assert.deepEqual(children(files, '/build/electron'), ['/build/electron/cli', '/build/electron/core', '/build/electron/server', '/build/electron/shell']);
  for (const required of [
    '/build/electron/shell/main.js',
    '/build/electron/shell/preload.cjs',
    '/build/electron/core/service.js',
    '/build/electron/core/paths.js',
    // Worker and child-process entry points, loaded by path rather than imported.
    '/build/electron/core/onnx/ort-worker.js',
    '/build/electron/core/model/pack-worker.js',
    '/build/electron/core/virtual-phone/main.js',
  ]) {
    assert.ok(files.has(required), `${required} is not in ${asarPath}`);
  }
  const unwanted = [...files].filter((f) => f.endsWith('.map') || (!f.startsWith('/node_modules/') && /\.test\.[cm]?js$|\.[cm]?tsx?$/.test(f)));
  assert.deepEqual(unwanted, [], 'source maps, our tests or sources in the asar');

  const pkg = JSON.parse(extractFile(asarPath, 'package.json').toString('utf8')) as Record<string, unknown>;
  assert.equal(pkg.main, PKG.main);
  assert.equal(pkg.type, 'module');
  assert.equal(pkg.devDependencies, undefined);
  assert.equal(pkg.scripts, undefined);
  assert.ok(files.has(`/${PKG.main}`), `package.json main ${PKG.main} is not in the asar`);

  for (const dep of Object.keys(PKG.dependencies)) {
    const present = files.has(`/node_modules/${dep}/package.json`);
    if (RENDERER_BUNDLED.includes(dep)) assert.ok(!present, `${dep} is bundled by Vite and should not be in the asar`);
    else assert.ok(present, `production dependency ${dep} is not in the asar`);
  }
  for (const dep of Object.keys(PKG.devDependencies)) assert.ok(!files.has(`/node_modules/${dep}`), `dev dependency ${dep} is in the asar`);

  // Everything the built index.html loads.
  const html = extractFile(asarPath, 'build/renderer/index.html').toString('utf8');
  const assets = [...html.matchAll(/(?:src|href)="\.\/(assets\/[^"]+)"/g)].map((m) => `/build/renderer/${m[1]}`);
  assert.ok(assets.some((a) => a.endsWith('.js')) && assets.some((a) => a.endsWith('.css')), `index.html loads no script or stylesheet: ${html}`);
  for (const a of assets) assert.ok(files.has(a), `index.html loads ${a}, which is not in the asar`);

  // main.js is the one module not loaded below (it imports electron): its own imports are electron, node: builtins
  // or files in the asar.
  const main = extractFile(asarPath, 'build/electron/shell/main.js').toString('utf8');
  for (const [, spec] of main.matchAll(/\bfrom\s+'([^']+)'/g)) {
    if (spec === 'electron' || spec.startsWith('node:')) continue;
    const target = new URL(spec, 'file:///build/electron/shell/main.js').pathname;
    assert.ok(files.has(target), `main.js imports ${spec}, which is not in the asar`);
  }
  return files;
}

/** The onnxruntime-node binary folders shipped (unpacked), as "platform/arch". */
function ortBinaryDirs(unpackedDir: string): string[] {
  const bin = join(unpackedDir, 'node_modules/onnxruntime-node/bin');
  const out: string[] = [];
  for (const napi of readdirSync(bin)) {
    for (const platform of readdirSync(join(bin, napi))) {
      for (const arch of readdirSync(join(bin, napi, platform))) out.push(`${napi}/${platform}/${arch}`);
    }
  }
  return out.sort();
}

function listFilesRecursive(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFilesRecursive(p).map((f) => join(name, f)));
    else out.push(name);
  }
  return out.sort();
}

/** The folder `to` (under resources) holds exactly the files of `from` (in the checkout), byte for byte. */
function assertSameTree(from: string, to: string): void {
  assert.deepEqual(listFilesRecursive(to), listFilesRecursive(from), `${to} does not hold the files of ${from}`);
  for (const f of listFilesRecursive(from)) assert.ok(readFileSync(join(from, f)).equals(readFileSync(join(to, f))), `${join(to, f)} differs from ${join(from, f)}`);
}

/** An agent in resources: an executable ELF file for `machine`, identical to the one the build made. */
function assertAgent(packaged: string, built: string, machine: number): void {
  assert.ok(existsSync(packaged), `${packaged} is missing`);
  assert.ok((statSync(packaged).mode & 0o111) !== 0, `${packaged} is not executable`);
  assert.deepEqual(readElfHeader(packaged), { is64Bit: true, machine }, `${packaged} is not a 64-bit ELF file for e_machine ${machine}`);
  assert.ok(readFileSync(packaged).equals(readFileSync(built)), `${packaged} differs from ${built}`);
}

test('electron-builder validates the whole configuration, mac and win sections included, and rejects a typo in any of them', async () => {
  const api = builderConfigApi();
  const config = await api.getConfig(ROOT, null, null);
  await api.validateConfiguration(structuredClone(config), QUIET_LOGGER);
  // A rebuild would fetch Electron's headers; onnxruntime-node is N-API and needs none.
  assert.equal(config.npmRebuild, false);
  for (const [section, typo] of [['mac', 'hardenedRuntim'], ['win', 'targt'], ['nsis', 'oneClik'], ['linux', 'maintaner'], ['dmg', 'contnts']] as const) {
    const broken = structuredClone(config) as Record<string, unknown>;
    broken[section] = { ...(broken[section] as object | undefined), [typo]: true };
    // The schema's message names the section ("configuration.mac should be ..."), not the misspelt key.
    await assert.rejects(api.validateConfiguration(broken, QUIET_LOGGER), new RegExp(`configuration\\.${section}\\b`), `${typo} in ${section} was accepted`);
  }
});

test('linux --dir: the unpacked app holds what an installed app needs, and its packaged core runs onnxruntime and the agent', { skip, timeout: 300_000 }, async (t) => {
  const standIn = await makeLinuxStandIn(join(work, 'electron-linux'), ELECTRON_VERSION);
  // The deb and AppImage targets need fpm and appimagetool (downloaded); what they take from the configuration and
  // package.json is computed here, on the real LinuxPackager, by the same code they run.
  let debMeta: FpmMetaInfo | undefined;
  let desktopEntry = '';
  const afterPack = async (ctx: AfterPackContext): Promise<void> => {
    const { LinuxTargetHelper, FpmTarget } = linuxTargetApi();
    const helper = new LinuxTargetHelper(ctx.packager);
    const deb = new FpmTarget('deb', ctx.packager, helper, ctx.outDir);
    debMeta = await deb.checkOptions();
    desktopEntry = await helper.computeDesktopEntry(deb.options);
  };
  const out = join(work, 'linux');
  const seconds = await pack(Platform.LINUX, Arch.x64, standIn, out, { afterPack });
  t.diagnostic(`electron-builder linux --dir: ${seconds.toFixed(1)} s`);

  assert.deepEqual(debMeta, { name: 'confidant', maintainer: 'Confidant contributors', url: PKG.homepage, vendor: 'Confidant contributors' });
  for (const line of ['Name=Confidant', 'Exec=/opt/Confidant/confidant %U', 'Categories=Development;', 'StartupWMClass=confidant', `Comment=${PKG.description}`]) {
    assert.ok(desktopEntry.split('\n').includes(line), `desktop entry lacks ${line}:\n${desktopEntry}`);
  }

  const app = join(out, 'linux-unpacked');
  const resources = join(app, 'resources');
  // The stand-in runtime, renamed to the app's executable as the real `electron` would be.
  assert.equal(readFileSync(join(app, 'confidant'), 'utf8'), standInScript(ELECTRON_VERSION));
  assert.ok((statSync(join(app, 'confidant')).mode & 0o111) !== 0);
  assert.ok(!existsSync(join(app, 'electron')));

  const asarPath = join(resources, 'app.asar');
  checkAsarContents(asarPath);
  // onnxruntime's binding and library for this OS and architecture only, outside the asar (and marked so in it).
  const unpacked = join(resources, 'app.asar.unpacked');
  const ortDirs = ortBinaryDirs(unpacked);
  assert.equal(ortDirs.length, 1, `onnxruntime binaries shipped: ${ortDirs.join(', ')}`);
  assert.match(ortDirs[0]!, /^napi-v\d+\/linux\/x64$/);
  assert.deepEqual(readdirSync(join(unpacked, 'node_modules/onnxruntime-node/bin', ortDirs[0]!)).sort(), ['libonnxruntime.so.1', 'onnxruntime_binding.node']);
  for (const name of ['onnxruntime_binding.node', 'libonnxruntime.so.1']) {
    const rel = `node_modules/onnxruntime-node/bin/${ortDirs[0]}/${name}`;
    assert.deepEqual(readElfHeader(join(unpacked, rel)), { is64Bit: true, machine: ELF_MACHINE.x86_64 }, rel);
    assert.equal((statFile(asarPath, rel) as { unpacked?: boolean }).unpacked, true, `${rel} is not marked unpacked in the asar`);
  }

  // extraResources: the agents per ABI, the demo model and stories, adb when the build had it.
  assertAgent(join(resources, 'agents/x86_64/confidant-agent'), HOST_AGENT, ELF_MACHINE.x86_64);
  const haveArm64 = existsSync(ARM64_AGENT);
  if (haveArm64) assertAgent(join(resources, 'agents/arm64-v8a/confidant-agent'), ARM64_AGENT, ELF_MACHINE.aarch64);
  else noteMissing(`the arm64 agent ${ARM64_AGENT}`, 'npm run build:native:arm64 needs g++-aarch64-linux-gnu');
  assertSameTree(MODEL_DIR, join(resources, 'models/stories260K'));
  assertSameTree(join(ROOT, 'datasets/demo-stories'), join(resources, 'datasets/demo-stories'));
  const platformTools = join(ROOT, 'resources/platform-tools/linux');
  if (existsSync(join(platformTools, 'adb'))) {
    assertSameTree(platformTools, join(resources, 'platform-tools'));
    assert.ok((statSync(join(resources, 'platform-tools/adb')).mode & 0o111) !== 0, 'packaged adb is not executable');
  } else {
    assert.ok(!existsSync(join(resources, 'platform-tools')));
    t.diagnostic('resources/platform-tools/linux/adb is absent: the package uses the adb on PATH (as intended without it)');
  }

  // The packaged core, extracted with its unpacked part into a folder outside the checkout, in a plain Node process
  // (no Electron): the same createService call main.ts makes when packaged.
  const extracted = join(work, 'extracted', 'app');
  extractAll(asarPath, extracted);
  const golden = (JSON.parse(await readFile(GOLDEN, 'utf8')) as { ids: number[] }).ids;
  // A script file, not --input-type=module -e: workers inherit execArgv, and the ORT worker is a file.
  const script = join(work, 'packaged-core-check.mjs');
  await writeFile(script, CHILD_SCRIPT);
  const child = spawnSync(process.execPath, [script], {
    cwd: work,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, CONFIDANT_PACKAGE_CHECK: JSON.stringify({ app: extracted, resources, stateDir: join(work, 'user-data'), maxTokens: golden.length - 1 }) },
  });
  assert.equal(child.status, 0, `the packaged core failed in Node (status ${child.status}, signal ${child.signal}):\n${child.stderr}`);
  const got = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as ChildReport;

  const inside = (p: string) => !relative(extracted, p).startsWith('..');
  assert.ok(inside(got.ortEntry), `onnxruntime-node resolved outside the package: ${got.ortEntry}`);
  assert.ok(got.ortLibraries.some((p) => p.endsWith('/onnxruntime_binding.node')) && got.ortLibraries.some((p) => p.endsWith('/libonnxruntime.so.1')), `onnxruntime was not loaded: ${got.ortLibraries.join(', ')}`);
  for (const p of got.ortLibraries) assert.ok(inside(p), `onnxruntime library mapped from outside the package: ${p}`);

  assert.deepEqual(got.defaults, { modelPath: join(resources, 'models/stories260K'), datasetPath: join(resources, 'datasets/demo-stories/stories.txt') });
  const { path: modelPath, ...packagedFacts } = got.model;
  assert.equal(modelPath, join(resources, 'models/stories260K'));
  assert.deepEqual(packagedFacts, JSON.parse(JSON.stringify(modelFacts(await openModel(MODEL_DIR)))));
  assert.ok(got.previewCount > 0 && got.previewErrors === 0, `demo stories preview: ${got.previewCount} samples, ${got.previewErrors} errors`);
  // Greedy from BOS: llama2.c's golden continuation (an independent implementation), decoded by the checkout.
  assert.equal(got.text, (await loadTokenizer(MODEL_DIR)).decode(golden));

  assert.deepEqual(got.agents, {
    x86_64: join(resources, 'agents/x86_64/confidant-agent'),
    ...(haveArm64 ? { 'arm64-v8a': join(resources, 'agents/arm64-v8a/confidant-agent') } : {}),
  });
  // The packaged agent, started by the packaged core, speaks its protocol and reports the ABI of its folder.
  assert.deepEqual(got.hello, { abi: 'x86_64', protocolVersion: PROTOCOL_VERSION });
});

test('mac arm64 and win x64 --dir: each ships its own onnxruntime binaries only, the agents, model and stories', { skip, timeout: 300_000 }, async (t) => {
  const macOut = join(work, 'mac');
  const macSeconds = await pack(Platform.MAC, Arch.arm64, await makeMacStandIn(join(work, 'electron-mac'), ELECTRON_VERSION), macOut);
  t.diagnostic(`electron-builder mac --dir: ${macSeconds.toFixed(1)} s`);
  const contents = join(macOut, 'mac-arm64', 'Confidant.app', 'Contents');
  const plist = readFileSync(join(contents, 'Info.plist'), 'utf8');
  assert.match(plist, /<key>CFBundleIdentifier<\/key>\s*<string>dev\.confidant\.app<\/string>/);
  assert.match(plist, /<key>CFBundleExecutable<\/key>\s*<string>Confidant<\/string>/);
  assert.equal(readFileSync(join(contents, 'MacOS', 'Confidant'), 'utf8'), standInScript(ELECTRON_VERSION));
  const macOrt = checkMacOrWin(join(contents, 'Resources'), /^napi-v\d+\/darwin\/arm64$/, ['libonnxruntime.1.dylib', 'onnxruntime_binding.node']);
  // The libraries the binding's Mach-O load commands name (@rpath, which is @loader_path) are the ones shipped.
  const wanted = [...readFileSync(join(macOrt, 'onnxruntime_binding.node')).toString('latin1').matchAll(/@rpath\/([\w.+-]+\.dylib)\0/g)].map((m) => m[1]!);
  assert.deepEqual(wanted, ['libonnxruntime.1.dylib']);
  // mac.signIgnore (regular expressions on full paths; signing itself runs on macOS only): the ELF arm64 agent and
  // the data are left to the bundle's seal; the app, onnxruntime and the x86_64 host agent (Mach-O there) are signed.
  const signIgnore = ((await builderConfigApi().getConfig(ROOT, null, null)).mac as { signIgnore: string[] }).signIgnore.map((r) => new RegExp(r));
  const ignored = (p: string) => signIgnore.some((r) => r.test(join(contents, p)));
  for (const p of ['Resources/agents/arm64-v8a/confidant-agent', 'Resources/models/stories260K/model.safetensors', 'Resources/datasets/demo-stories/stories.txt']) {
    assert.ok(ignored(p), `codesign would try to sign ${p}`);
  }
  for (const p of ['MacOS/Confidant', 'Resources/agents/x86_64/confidant-agent', 'Resources/app.asar.unpacked/node_modules/onnxruntime-node/bin/napi-v6/darwin/arm64/onnxruntime_binding.node']) {
    assert.ok(!ignored(p), `codesign would skip ${p}`);
  }

  const winOut = join(work, 'win');
  const winSeconds = await pack(Platform.WINDOWS, Arch.x64, await makeWinStandIn(join(work, 'electron-win'), ELECTRON_VERSION), winOut);
  t.diagnostic(`electron-builder win --dir: ${winSeconds.toFixed(1)} s`);
  const winApp = join(winOut, 'win-unpacked');
  assert.ok(existsSync(join(winApp, 'Confidant.exe')));
  assert.ok(!existsSync(join(winApp, 'electron.exe')));
  checkMacOrWin(join(winApp, 'resources'), /^napi-v\d+\/win32\/x64$/, ['DirectML.dll', 'dxcompiler.dll', 'dxil.dll', 'onnxruntime.dll', 'onnxruntime_binding.node']);
});

/** The shared checks of the mac and win folders; returns the onnxruntime binary folder. */
function checkMacOrWin(resources: string, ortDir: RegExp, ortFiles: string[]): string {
  checkAsarContents(join(resources, 'app.asar'));
  const unpacked = join(resources, 'app.asar.unpacked');
  const dirs = ortBinaryDirs(unpacked);
  assert.equal(dirs.length, 1, `onnxruntime binaries shipped: ${dirs.join(', ')}`);
  assert.match(dirs[0]!, ortDir);
  const ort = join(unpacked, 'node_modules/onnxruntime-node/bin', dirs[0]!);
  assert.deepEqual(readdirSync(ort).sort(), ortFiles);
  assert.ok(existsSync(join(resources, 'agents/x86_64/confidant-agent')));
  if (existsSync(ARM64_AGENT)) assert.ok(existsSync(join(resources, 'agents/arm64-v8a/confidant-agent')));
  assertSameTree(MODEL_DIR, join(resources, 'models/stories260K'));
  assertSameTree(join(ROOT, 'datasets/demo-stories'), join(resources, 'datasets/demo-stories'));
  return ort;
}

interface ChildReport {
  ortEntry: string;
  ortLibraries: string[];
  defaults: { modelPath: string; datasetPath: string };
  model: { path: string } & Record<string, unknown>;
  previewCount: number;
  previewErrors: number;
  text: string;
  agents: Record<string, string>;
  hello: { abi: string; protocolVersion: number };
}

// Runs in a plain Node child from the extracted package. Importing the shell's and server's modules (all but main.js,
// which imports electron) proves every dependency they import resolves inside the package.
const CHILD_SCRIPT = `
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
const { app, resources, stateDir, maxTokens } = JSON.parse(process.env.CONFIDANT_PACKAGE_CHECK);
const load = (p) => import(pathToFileURL(join(app, p)).href);
const { createService } = await load('build/electron/core/service.js');
for (const m of ['shell/app.js', 'shell/ipc.js', 'shell/window.js', 'shell/launch-options.js', 'server/serve.js']) await load('build/electron/' + m);
const { findAgentBinaries } = await load('build/electron/core/paths.js');
const { startLocalAgent } = await load('build/electron/core/deploy/local-agent.js');
const ortEntry = createRequire(join(app, 'build/electron/core/service.js')).resolve('onnxruntime-node');
const service = await createService({ repoRoot: resources, stateDir });
const defaults = await service.defaults();
const model = await service.inspectModel({ path: defaults.modelPath });
const preview = await service.previewDataset({ path: defaults.datasetPath });
const generated = await service.generate({ runId: null, prompt: '', maxTokens });
const ortLibraries = [...new Set(readFileSync('/proc/self/maps', 'utf8').split('\\n')
  .map((line) => line.trim().split(/\\s+/).slice(5).join(' ')).filter((p) => /onnxruntime[^/]*\\.(node|so[.0-9]*)$/.test(p)))];
const agents = findAgentBinaries(resources);
const agent = await startLocalAgent({ binary: agents.x86_64, label: 'packaged x86_64 agent' });
const { abi, protocolVersion } = agent.client.capabilities;
await agent.stop();
await service.dispose();
const report = { ortEntry, ortLibraries, defaults, model, previewCount: preview.count, previewErrors: preview.errors.length,
  text: generated.text, agents, hello: { abi, protocolVersion } };
process.stdout.write(JSON.stringify(report) + '\\n', () => process.exit(0));
`;
