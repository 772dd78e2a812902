// Free TCP ports on 127.0.0.1 for throwaway servers (tests, demo): probe from a random start, never hand one out twice.
import net from 'node:net';

/** Ports are probed below the usual Linux ephemeral range (32768+), so outgoing connections rarely take them. */
const PROBE_LOW = 15_000;
const PROBE_HIGH = 32_000;
const MAX_PROBES = 200;

/** Ports this process already handed out: another caller in the same process must not get them again. */
const handedOut = new Set<number>();

function canListen(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => {
      server.close(() => resolve(true));
    });
  });
}

function kernelPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not read the bound port'))));
    });
  });
}

/**
 * A port that nothing listens on right now. Each caller (and each process, by the random start) probes a
 * different stretch of the range, which keeps parallel test workers from racing for the same port.
 * The port is free when returned, not reserved: a server that fails to bind should ask again.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const span = PROBE_HIGH - PROBE_LOW;
  const start = Math.floor(Math.random() * span);
  for (let i = 0; i < MAX_PROBES; i++) {
    const port = PROBE_LOW + ((start + i * 7) % span);
    if (handedOut.has(port)) continue;
    if (await canListen(port, host)) {
      handedOut.add(port);
      return port;
    }
  }
  // Crowded range: let the kernel pick.
  for (let i = 0; i < 10; i++) {
    const port = await kernelPort(host);
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free TCP port found on ${host}`);
}
