// Where the harness looks for a Docker engine before it loads testcontainers: the same places, in the same order.
import { describe, expect, it } from 'vitest';
import {
  findDockerEndpoint,
  noDockerEndpointReason,
  parseProperties,
  socketCandidates,
  type DockerLookupContext,
} from '../../../src/testing/docker-engine.js';

function context(over: {
  env?: NodeJS.ProcessEnv;
  platform?: NodeJS.Platform;
  files?: Record<string, string>;
}): DockerLookupContext {
  const files = over.files ?? {};
  return {
    env: over.env ?? {},
    platform: over.platform ?? 'linux',
    homeDir: '/home/dev',
    uid: 1000,
    exists: (file) => file in files,
    readText: (file) => files[file] ?? null,
  };
}

describe('parseProperties', () => {
  it('reads key=value and key: value lines, skipping comments and blanks', () => {
    const props = parseProperties('# comment\n! also\n\ndocker.host = tcp://h:2375\ntc.host: tcp://tc:1\r\n');
    expect(props.get('docker.host')).toBe('tcp://h:2375');
    expect(props.get('tc.host')).toBe('tcp://tc:1');
    expect(props.size).toBe(2);
  });
});

describe('findDockerEndpoint', () => {
  it('finds nothing on a machine with no socket, no DOCKER_HOST and no properties file', () => {
    const ctx = context({});
    expect(findDockerEndpoint(ctx)).toBeNull();
    const reason = noDockerEndpointReason(ctx);
    expect(reason).toContain('$DOCKER_HOST is not set');
    expect(reason).toContain('/var/run/docker.sock');
  });

  it('takes the standard socket when it exists', () => {
    const ctx = context({ files: { '/var/run/docker.sock': '' } });
    expect(findDockerEndpoint(ctx)).toEqual({ uri: 'unix:///var/run/docker.sock', source: 'socket' });
  });

  it('takes the rootless sockets in order: $XDG_RUNTIME_DIR, ~/.docker/run, ~/.docker/desktop, /run/user/<uid>', () => {
    const ctx = context({ env: { XDG_RUNTIME_DIR: '/run/user/1000' } });
    expect(socketCandidates(ctx)).toEqual([
      '/var/run/docker.sock',
      '/run/user/1000/docker.sock',
      '/home/dev/.docker/run/docker.sock',
      '/home/dev/.docker/desktop/docker.sock',
      '/run/user/1000/docker.sock',
    ]);
    const desktop = context({ files: { '/home/dev/.docker/desktop/docker.sock': '' } });
    expect(findDockerEndpoint(desktop)?.uri).toBe('unix:///home/dev/.docker/desktop/docker.sock');
  });

  it('prefers tc.host, then $DOCKER_HOST, then docker.host from ~/.testcontainers.properties, over sockets', () => {
    const props = '/home/dev/.testcontainers.properties';
    const socket = { '/var/run/docker.sock': '' };
    expect(
      findDockerEndpoint(
        context({
          env: { DOCKER_HOST: 'tcp://env:2375' },
          files: { ...socket, [props]: 'tc.host=tcp://tc:2375' },
        }),
      )?.uri,
    ).toBe('tcp://tc:2375');
    expect(
      findDockerEndpoint(
        context({
          env: { DOCKER_HOST: 'tcp://env:2375' },
          files: { ...socket, [props]: 'docker.host=tcp://p:1' },
        }),
      ),
    ).toEqual({ uri: 'tcp://env:2375', source: '$DOCKER_HOST' });
    expect(findDockerEndpoint(context({ files: { ...socket, [props]: 'docker.host=tcp://p:1' } }))?.uri).toBe(
      'tcp://p:1',
    );
  });

  it('tries the named pipe on Windows and no socket paths there', () => {
    const ctx = context({ platform: 'win32' });
    expect(socketCandidates(ctx)).toEqual([]);
    expect(findDockerEndpoint(ctx)?.uri).toBe('npipe:////./pipe/docker_engine');
  });
});
