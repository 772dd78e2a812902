// Is there a Docker engine to try? The places testcontainers looks for one (tc.host / docker.host in
// ~/.testcontainers.properties, $DOCKER_HOST, the usual and the rootless sockets, the Windows pipe), checked
// without loading testcontainers, so a machine without Docker pays nothing. Whether the engine answers is
// testcontainers' own check, made only once an endpoint was found here (docker-pg.ts: probeDockerEngine).
import process from 'node:process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface DockerEndpoint {
  /** e.g. unix:///var/run/docker.sock, tcp://host:2375 */
  uri: string;
  /** Where it came from, for messages. */
  source: string;
}

/** What the lookup reads: the real machine by default, anything in tests. */
export interface DockerLookupContext {
  env: NodeJS.ProcessEnv;
  platform: NodeJS.Platform;
  homeDir: string;
  uid: number;
  exists(file: string): boolean;
  /** The file's text, or null when it cannot be read. */
  readText(file: string): string | null;
}

export function machineContext(): DockerLookupContext {
  return {
    env: process.env,
    platform: process.platform,
    homeDir: os.homedir(),
    uid: typeof process.getuid === 'function' ? process.getuid() : -1,
    exists: (file) => fs.existsSync(file),
    readText: (file) => {
      try {
        return fs.readFileSync(file, 'utf8');
      } catch {
        return null;
      }
    },
  };
}

/** `key=value` / `key: value` lines of a Java-style .properties file (comments `#` and `!`); enough for the keys read here. */
export function parseProperties(text: string): Map<string, string> {
  const props = new Map<string, string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('!')) continue;
    const match = /^([^=:\s]+)\s*[=:\s]\s*(.*)$/.exec(line);
    if (match !== null) props.set(match[1], match[2].trim());
  }
  return props;
}

/** The sockets a local or rootless engine listens on (Linux, macOS), in the order testcontainers tries them. */
export function socketCandidates(ctx: DockerLookupContext): string[] {
  if (ctx.platform !== 'linux' && ctx.platform !== 'darwin') return [];
  const candidates = ['/var/run/docker.sock'];
  const runtimeDir = ctx.env.XDG_RUNTIME_DIR;
  if (runtimeDir !== undefined && runtimeDir !== '') candidates.push(path.join(runtimeDir, 'docker.sock'));
  candidates.push(
    path.join(ctx.homeDir, '.docker', 'run', 'docker.sock'),
    path.join(ctx.homeDir, '.docker', 'desktop', 'docker.sock'),
  );
  if (ctx.uid >= 0) candidates.push(path.join('/run', 'user', String(ctx.uid), 'docker.sock'));
  return candidates;
}

/** The Docker endpoint testcontainers would use, or null when there is none to try. */
export function findDockerEndpoint(ctx: DockerLookupContext = machineContext()): DockerEndpoint | null {
  const propsFile = path.join(ctx.homeDir, '.testcontainers.properties');
  const propsText = ctx.readText(propsFile);
  const props = propsText === null ? new Map<string, string>() : parseProperties(propsText);
  const tcHost = props.get('tc.host');
  if (tcHost !== undefined && tcHost !== '') return { uri: tcHost, source: `tc.host in ${propsFile}` };
  const dockerHost = ctx.env.DOCKER_HOST;
  if (dockerHost !== undefined && dockerHost !== '') return { uri: dockerHost, source: '$DOCKER_HOST' };
  const fromProps = props.get('docker.host');
  if (fromProps !== undefined && fromProps !== '')
    return { uri: fromProps, source: `docker.host in ${propsFile}` };
  for (const socket of socketCandidates(ctx)) {
    if (ctx.exists(socket)) return { uri: `unix://${socket}`, source: 'socket' };
  }
  if (ctx.platform === 'win32')
    return { uri: 'npipe:////./pipe/docker_engine', source: 'Windows named pipe' };
  return null;
}

/** Why findDockerEndpoint found nothing, in one sentence for skip and error messages. */
export function noDockerEndpointReason(ctx: DockerLookupContext = machineContext()): string {
  const sockets = socketCandidates(ctx);
  return (
    'no Docker engine: $DOCKER_HOST is not set, ~/.testcontainers.properties names none' +
    (sockets.length > 0 ? `, and none of ${sockets.join(', ')} exists` : '')
  );
}
