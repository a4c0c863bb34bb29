// Deploys to phones spread over several adb servers (this machine's, other workstations' `adb -a nodaemon server`,
// a device farm): a stage goes to the AdbDeployer of the phone's server, picked from its id "<server>/<serial>";
// a plain serial means the default server. The pipeline relays activations through this host, so stages on
// different servers need nothing else.
import type { Adb } from '../adb/client.js';
import { parseDeviceId, serverKey } from '../adb/servers.js';
import { AdbDeployer, type AdbDeployerOptions } from './adb-deployer.js';
import type { DeployedAgent, PushProgress, StageDeployer } from './stage-deployer.js';

export class MultiServerDeployer implements StageDeployer {
  readonly description: string;

  /** deployers: one per server key ("host:port"); defaultServer: the key plain serials belong to. */
  constructor(private readonly deployers: ReadonlyMap<string, StageDeployer>, private readonly defaultServer: string) {
    if (!deployers.has(defaultServer)) throw new Error(`no deployer for the default adb server ${defaultServer}`);
    this.description = [...deployers.values()].map((d) => d.description).join(' + ');
  }

  async deploy(device: string, stageFile: string, opts: { memoryBudgetBytes: number; onProgress?: (p: PushProgress) => void; signal?: AbortSignal }): Promise<DeployedAgent> {
    const { server, serial } = parseDeviceId(device);
    const key = server ?? this.defaultServer;
    const deployer = this.deployers.get(key);
    if (!deployer) {
      throw new Error(`${device} is on adb server ${key}, which this run does not use (servers: ${[...this.deployers.keys()].join(', ')})`);
    }
    const agent = await deployer.deploy(serial, stageFile, opts);
    return { ...agent, serial: device };
  }
}

/**
 * The deployer for a run's devices (plan names from chooseTrainingDevices): an AdbDeployer for the default server
 * (adbs[0]) and for every other server one of the devices is on.
 */
export function deployerForServers(adbs: Adb[], devices: { serial: string }[], agentBinaries: Record<string, string>, options: AdbDeployerOptions = {}): MultiServerDeployer {
  const defaultServer = serverKey(adbs[0]!.endpoint);
  const used = new Set(devices.map((d) => parseDeviceId(d.serial).server ?? defaultServer));
  const deployers = new Map<string, StageDeployer>();
  for (const adb of adbs) {
    const key = serverKey(adb.endpoint);
    if (key === defaultServer || used.has(key)) deployers.set(key, new AdbDeployer(adb, agentBinaries, options));
  }
  return new MultiServerDeployer(deployers, defaultServer);
}
