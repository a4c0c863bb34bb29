// Helpers for the packaging test (test/integration/package-linux.test.ts): stand-in Electron distributions for
// electron-builder's `electronDist`, an ELF header reader, a guard that fails any network connection, and typed
// handles on the app-builder-lib internals the test calls. Not a packager: electron-builder itself does the packaging.
import { createRequire } from 'node:module';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { openSync, readSync, closeSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
// app-builder-lib is electron-builder's engine; its own dependencies (resedit) are loaded the way it loads them.
const requireFromBuilderLib = createRequire(require.resolve('app-builder-lib/package.json'));

/** What every stand-in executable prints: it replaces only the Electron runtime binary, which cannot be downloaded here. */
export function standInScript(electronVersion: string): string {
  return (
    '#!/bin/sh\n' +
    `echo "stand-in for the Electron ${electronVersion} runtime binary (the packaging test cannot download Electron):" >&2\n` +
    'echo "this folder checks the packaged files only; install a real Electron to run the app" >&2\n' +
    'exit 1\n'
  );
}

async function writeExecutable(path: string, text: string): Promise<void> {
  await writeFile(path, text);
  await chmod(path, 0o755);
}

/** The files next to the runtime in Electron's own zips, which electron-builder copies or renames. */
async function writeDistFiles(dir: string, electronVersion: string): Promise<void> {
  await writeFile(join(dir, 'LICENSE'), 'stand-in for Electron\'s LICENSE\n');
  await writeFile(join(dir, 'LICENSES.chromium.html'), '<!-- stand-in for Chromium\'s licences -->\n');
  await writeFile(join(dir, 'version'), `${electronVersion}\n`);
}

/**
 * An unpacked linux-x64 Electron distribution with a shell script in place of the `electron` binary. Everything
 * electron-builder does to the real one (copy the folder, rename `electron` to the app's executable name, keep the
 * licences) it does to this one.
 */
export async function makeLinuxStandIn(dir: string, electronVersion: string): Promise<string> {
  await mkdir(join(dir, 'locales'), { recursive: true });
  await mkdir(join(dir, 'resources'), { recursive: true });
  await writeExecutable(join(dir, 'electron'), standInScript(electronVersion));
  await writeFile(join(dir, 'locales', 'en-US.pak'), 'stand-in\n');
  await writeDistFiles(dir, electronVersion);
  return dir;
}

function plist(entries: Record<string, string>): string {
  const body = Object.entries(entries)
    .map(([k, v]) => `  <key>${k}</key>\n  <string>${v}</string>`)
    .join('\n');
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n' +
    `<plist version="1.0">\n<dict>\n${body}\n</dict>\n</plist>\n`
  );
}

/**
 * An unpacked darwin Electron distribution: Electron.app with its Info.plist and helper apps, shell scripts in place
 * of the Mach-O executables. electron-builder rewrites the plists, renames the executables and the bundle.
 */
export async function makeMacStandIn(dir: string, electronVersion: string): Promise<string> {
  const contents = join(dir, 'Electron.app', 'Contents');
  await mkdir(join(contents, 'MacOS'), { recursive: true });
  await mkdir(join(contents, 'Resources'), { recursive: true });
  await writeExecutable(join(contents, 'MacOS', 'Electron'), standInScript(electronVersion));
  await writeFile(
    join(contents, 'Info.plist'),
    plist({ CFBundleExecutable: 'Electron', CFBundleIdentifier: 'com.github.Electron', CFBundleName: 'Electron', CFBundleIconFile: 'electron.icns', CFBundlePackageType: 'APPL', CFBundleVersion: electronVersion }),
  );
  for (const suffix of ['', ' (Renderer)', ' (GPU)', ' (Plugin)']) {
    const name = `Electron Helper${suffix}`;
    const helper = join(contents, 'Frameworks', `${name}.app`, 'Contents');
    await mkdir(join(helper, 'MacOS'), { recursive: true });
    await writeExecutable(join(helper, 'MacOS', name), standInScript(electronVersion));
    await writeFile(join(helper, 'Info.plist'), plist({ CFBundleExecutable: name, CFBundleIdentifier: 'com.github.Electron.helper', CFBundleName: name, CFBundlePackageType: 'APPL' }));
  }
  await writeDistFiles(dir, electronVersion);
  return dir;
}

interface ResEdit {
  NtExecutable: { createEmpty(is32Bit?: boolean, isDLL?: boolean): { generate(): ArrayBuffer } };
  NtExecutableResource: { from(exe: unknown): { entries: unknown[]; outputResource(exe: unknown): void } };
  Resource: {
    VersionInfo: {
      createEmpty(): { setStringValues(lang: { lang: number; codepage: number }, values: Record<string, string>): void; outputToResourceEntries(entries: unknown[]): void };
    };
  };
}

/**
 * An unpacked win32-x64 Electron distribution whose electron.exe is an empty PE image with a version resource
 * (built with resedit, the library electron-builder edits executables with): electron-builder renames it, writes
 * the product name, version and asar integrity into its resources.
 */
export async function makeWinStandIn(dir: string, electronVersion: string): Promise<string> {
  await mkdir(join(dir, 'locales'), { recursive: true });
  await mkdir(join(dir, 'resources'), { recursive: true });
  const resedit = requireFromBuilderLib('resedit') as ResEdit;
  const exe = resedit.NtExecutable.createEmpty(false, false);
  const res = resedit.NtExecutableResource.from(exe);
  const version = resedit.Resource.VersionInfo.createEmpty();
  version.setStringValues({ lang: 1033, codepage: 1200 }, { ProductName: `stand-in for Electron ${electronVersion}` });
  version.outputToResourceEntries(res.entries);
  res.outputResource(exe);
  await writeFile(join(dir, 'electron.exe'), Buffer.from(exe.generate()));
  await writeFile(join(dir, 'locales', 'en-US.pak'), 'stand-in\n');
  await writeDistFiles(dir, electronVersion);
  return dir;
}

/** e_machine values (System V ABI) of the architectures the app ships agents and onnxruntime for. */
export const ELF_MACHINE = { x86_64: 62, aarch64: 183 } as const;

/** The ELF header's class and machine, or null when the file is not ELF. */
export function readElfHeader(path: string): { is64Bit: boolean; machine: number } | null {
  const head = Buffer.alloc(20);
  const fd = openSync(path, 'r');
  try {
    if (readSync(fd, head, 0, 20, 0) < 20) return null;
  } finally {
    closeSync(fd);
  }
  if (head.readUInt32BE(0) !== 0x7f454c46) return null;
  const littleEndian = head[5] === 1;
  return { is64Bit: head[4] === 2, machine: littleEndian ? head.readUInt16LE(18) : head.readUInt16BE(18) };
}

/**
 * Runs `fn` with every TCP/IPC connection from this process refused and recorded: packaging must not download
 * anything (Electron zips, rebuild headers, fpm, NSIS...). Child processes are not covered; electron-builder's
 * only one here is `npm list`, which reads node_modules.
 */
export async function withNetworkRefused<T>(fn: () => Promise<T>): Promise<{ result: T; attempts: string[] }> {
  const attempts: string[] = [];
  const original = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function refuse(this: net.Socket, ...args: unknown[]): net.Socket {
    const [first, second] = args;
    const target =
      typeof first === 'object' && first !== null
        ? JSON.stringify({ host: (first as net.TcpNetConnectOpts).host, port: (first as net.TcpNetConnectOpts).port, path: (first as net.IpcNetConnectOpts).path })
        : `${String(second ?? 'localhost')}:${String(first)}`;
    attempts.push(target);
    throw new Error(`packaging tried to connect to ${target}: nothing may be downloaded while packaging`);
  } as typeof original;
  try {
    return { result: await fn(), attempts };
  } finally {
    net.Socket.prototype.connect = original;
  }
}

/** app-builder-lib's schema validation of a whole configuration (every platform section, not only the one built). */
export function builderConfigApi(): {
  getConfig(projectDir: string, configPath: string | null, configFromOptions: object | null): Promise<Record<string, unknown>>;
  validateConfiguration(config: object, debugLogger: { isEnabled: boolean; add(key: string, value: unknown): void }): Promise<void>;
} {
  return requireFromBuilderLib('./out/util/config/config.js');
}

/** What the deb target puts in the package's control fields (FpmTarget.checkOptions). */
export interface FpmMetaInfo {
  name: string;
  maintainer: string;
  url: string;
  vendor: string;
}

/** The deb (fpm) and AppImage code paths that need package metadata, called on the real LinuxPackager. */
export interface LinuxTargetApi {
  LinuxTargetHelper: new (packager: unknown) => { computeDesktopEntry(options: object, exec?: string): Promise<string> };
  FpmTarget: new (name: string, packager: unknown, helper: unknown, outDir: string) => {
    options: object;
    checkOptions(): Promise<FpmMetaInfo>;
  };
}

export function linuxTargetApi(): LinuxTargetApi {
  return {
    LinuxTargetHelper: requireFromBuilderLib('./out/targets/LinuxTargetHelper.js').LinuxTargetHelper,
    FpmTarget: requireFromBuilderLib('./out/targets/FpmTarget.js').default,
  };
}
